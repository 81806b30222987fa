/** `scheme://host:port`, with an IPv6 host in brackets. */
export function baseUrl(host: string, port: number, scheme = 'http'): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
