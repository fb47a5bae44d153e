#!/usr/bin/python3
"""One libtorrent peer for interop tests (run with Debian's /usr/bin/python3).

    lt_peer.py seed  --torrent T --save DIR
    lt_peer.py leech --torrent T --save DIR --connect PORT [--connect PORT ...]

Listens on 127.0.0.1 (ephemeral port), TCP only, no DHT/LSD/UPnP/NAT-PMP, several connections
per IP allowed (every test peer is on 127.0.0.1). Prints JSON lines on stdout:
  {"event": "listening", "port": N}
  {"event": "seeding"}                      (seed: the startup hash check passed)
  {"event": "progress", "done": BYTES, "peers": N}   (leech, every 200 ms)
  {"event": "done", "downloaded": BYTES}    (leech: every piece passed its SHA-1 check)
  {"event": "error", "message": "..."}
A seed also connects to the --connect ports (so a downloader that only accepts incoming peers
can be reached). Runs until killed or stdin closes.
"""
import argparse
import json
import sys
import threading
import time

import libtorrent as lt


def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["seed", "leech"])
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--connect", type=int, action="append", default=[])
    a = ap.parse_args()

    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "enable_outgoing_tcp": True, "enable_incoming_tcp": True,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification),
        "user_agent": "coterie-interop-test",
    })
    port = 0
    for _ in range(500):
        port = ses.listen_port()
        if port:
            break
        time.sleep(0.01)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
    atp.save_path = a.save
    h = ses.add_torrent(atp)
    out(event="listening", port=port)

    # Exit when the parent closes our stdin (or dies).
    def watch_stdin():
        for _ in sys.stdin:
            pass
        import os
        os._exit(0)
    threading.Thread(target=watch_stdin, daemon=True).start()

    if a.role == "seed":
        while not h.status().is_seeding:
            for al in ses.pop_alerts():
                if isinstance(al, lt.torrent_error_alert):
                    out(event="error", message=al.message())
            time.sleep(0.02)
        out(event="seeding")
    for p in a.connect:
        h.connect_peer(("127.0.0.1", p))

    done = False
    last = 0.0
    while True:
        for al in ses.pop_alerts():
            if isinstance(al, lt.torrent_finished_alert) and a.role == "leech" and not done:
                done = True
                out(event="done", downloaded=h.status().total_payload_download)
            elif isinstance(al, lt.torrent_error_alert):
                out(event="error", message=al.message())
        now = time.monotonic()
        if a.role == "leech" and not done and now - last > 0.2:
            last = now
            st = h.status()
            out(event="progress", done=st.total_done, peers=st.num_peers)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
