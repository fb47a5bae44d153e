/**
 * Every limit a remote peer can run into, in one place (DESIGN: "Limits everywhere"). Each number
 * bounds something a hostile peer could otherwise grow (connections, memory, queued work, time
 * held); the modules that enforce them import them from here, so this file is the one table to
 * read or tune. Exceeding a limit marked "grounds for disconnecting" closes that peer's connection
 * and nothing else: other peers and downloads go on.
 *
 * The tracker's own transport limits (RPC lines, connections and requests per address, login
 * failures) live beside its server in src/tracker/server.ts (`DEFAULT_LIMITS`); the wire-format
 * caps (frame, extended handshake, ticket, bencode) live with their codecs because they are part of
 * the format. docs/hardening.md lists them all with the reasons for their values.
 */

// ------------------------------------------------------------------ connections (peer server)

/**
 * Incoming peer connections open at once, all files together. A connection costs a socket, a
 * session and at most one partial frame of buffered input; 200 is far above what one client's
 * uploads use (8 unchoked per file) yet keeps a connection flood from exhausting descriptors.
 */
export const MAX_INCOMING_CONNECTIONS = 200;

/**
 * Incoming connections from one IP address. A BitTorrent client needs one per file; 32 leaves
 * room for loopback tests and NATed groups while one hostile host cannot take all the slots.
 */
export const MAX_CONNECTIONS_PER_ADDRESS = 32;

/** Connections a download dials at most (its own peers). */
export const MAX_PEERS_PER_DOWNLOAD = 30;

/**
 * Incoming peers a download adopts beyond {@link MAX_PEERS_PER_DOWNLOAD} (others downloading the
 * same file that dialled us). More are closed at once.
 */
export const EXTRA_INCOMING_PEERS_PER_DOWNLOAD = 10;

// ------------------------------------------------------------------------------- timeouts

/**
 * From TCP accept (or connect) to a finished handshake, BEP 10 extended handshake (the access
 * ticket) included. A peer that sends nothing, or half a handshake (slowloris), is closed then.
 * Grounds for disconnecting.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A connection on which nothing at all arrived for this long is closed (peers keep alive every 60 s). */
export const IDLE_TIMEOUT_MS = 120_000;

/** We send a keep-alive after this long without sending anything. */
export const KEEPALIVE_MS = 60_000;

// ------------------------------------------------------------------------- requests (serving)

/**
 * REQUESTs one peer may have queued with us while unchoked. A standard client keeps 250-500 in
 * flight (libtorrent's default reqq is 500; we advertise 512). More is a flood: grounds for
 * disconnecting.
 */
export const MAX_QUEUED_REQUESTS = 512;

/**
 * REQUESTs a peer may send while we choke it, counted since we last choked it. A few are an
 * innocent race (it had not seen our CHOKE yet) and are dropped; a stream of them only costs us
 * CPU, so past this number the peer is disconnected.
 */
export const MAX_REQUESTS_WHILE_CHOKED = 2 * MAX_QUEUED_REQUESTS;

/** We stop reading blocks for a peer while this many bytes wait unsent in its socket (a peer that does not read). */
export const SEND_HIGH_WATER = 2 * 1024 * 1024;

// ------------------------------------------------------------------------ data (downloading)

/** Most blocks we keep requested from one peer (our side of the pipeline). */
export const MAX_PIPELINE = 128;

/**
 * Bytes of PIECE data a peer may send us that answer no request of ours (never asked, already
 * cancelled, wrong length) before it is disconnected. Endgame duplicates and CANCEL races waste a
 * few blocks legitimately; a peer streaming data we never asked for is flooding.
 */
export const MAX_UNREQUESTED_BYTES = 4 * 1024 * 1024;

/**
 * Bytes of received but not yet verified piece data one download holds in memory (its partial
 * pieces). A block that would start a new partial piece past this is dropped (and requested again
 * later), so peers that start many pieces and finish none cannot grow memory. High enough that an
 * honest 30-peer download at full speed never reaches it with 4 MiB pieces.
 */
export const MAX_UNVERIFIED_BYTES = 256 * 1024 * 1024;

/**
 * Failed pieces a peer contributed blocks to, together with other peers, before it is banned on
 * suspicion alone. A peer that alone sent a piece failing its hash is banned at once.
 */
export const STRIKES_TO_BAN = 5;

// ------------------------------------------------------------------------------------- files

/** Files of seeded shares kept open at once (an LRU of read-only descriptors). */
export const MAX_OPEN_SEED_FILES = 64;
