/**
 * Which control node may decide. One control node leads on its own (`soleLeader`); several elect
 * one through etcd (`src/control`), and a node decides only while it holds the leader's lease by
 * its own clock as well: it stops before the lease can run out at etcd, so a new leader never
 * decides while the old one still does.
 */

/** The node that leads, as a node last saw it. */
export type LeaderView = {
  /** The node's name (`control.nodes[].name`; `control` for the single node). */
  node: string;
  /** Base URL of its control API. */
  url: string;
  /** When it was elected, ms since the epoch. */
  since: number;
  /** Its lease in etcd, as a decimal string (`sole` for the single node). */
  lease: string;
  /** The lease's time to live, ms. */
  leaseTtlMs: number;
};

export interface Leadership {
  /** This node's name. */
  readonly node: string;
  /** True while this node may decide (it holds the lease, and its own clock says it still does). */
  isLeader(): boolean;
  /** The leader as last seen; null while nobody leads. */
  leader(): LeaderView | null;
  /** Told each time this node starts or stops leading; returns the unsubscribe. */
  onChange(listener: (leading: boolean) => void): () => void;
}

/** The single control node: always the leader, of itself. */
export function soleLeader(node: string, url: () => string, now: () => number = Date.now): Leadership {
  const since = now();
  return {
    node,
    isLeader: () => true,
    leader: () => ({ node, url: url(), since, lease: 'sole', leaseTtlMs: 0 }),
    onChange: () => () => {},
  };
}
