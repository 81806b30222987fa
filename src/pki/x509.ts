/**
 * The one place that loads @peculiar/x509: reflect-metadata (which its DI container requires) must load first, and the library
 * must use node:crypto's WebCrypto. Every other file of the PKI imports `x509` and `subtle` from here.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

const subtle = webcrypto.subtle;

export { subtle, x509 };
