"""Drives a Strata member with python-etcd (Debian python3-etcd), for
cmd/strata/pyetcd_test.go. Each mode prints one JSON line the Go test
compares exactly.

  machines URL                 -> {"machines": [...]}  (client.machines)
  watch KEY INDEX URL URL...   -> prints "watching", then {"value": ...}
                                  or {"raised": "..."} from one watch
  tls URL CA CERT KEY          -> {"with_cert": ..., "without_cert": ...}
"""
import json
import sys
from urllib.parse import urlparse

import etcd


def hosts(urls):
    return tuple((urlparse(u).hostname, urlparse(u).port) for u in urls)


def client(urls, **kw):
    u = urlparse(urls[0])
    h = hosts(urls)
    return etcd.Client(host=h if len(h) > 1 else h[0][0], port=u.port,
                       protocol=u.scheme, allow_reconnect=True, **kw)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "machines":
        c = etcd.Client(host=urlparse(args[0]).hostname, port=urlparse(args[0]).port)
        print(json.dumps({"machines": c.machines}))
    elif mode == "watch":
        key, index, urls = args[0], int(args[1]), args[2:]
        c = client(urls)
        print("watching", flush=True)
        try:
            r = c.watch(key, index=index, timeout=60)
            print(json.dumps({"value": r.value}))
        except Exception as e:  # the test shows what was raised
            print(json.dumps({"raised": "%s: %s" % (type(e).__name__, e)}))
    elif mode == "tls":
        url, ca, cert, key = args
        u = urlparse(url)
        out = {}
        try:
            c = etcd.Client(host=u.hostname, port=u.port, protocol="https", ca_cert=ca, cert=(cert, key))
            c.write("/py/tls", "secret")
            out["with_cert"] = c.read("/py/tls").value
        except Exception as e:
            out["with_cert"] = "raised %s" % type(e).__name__
        try:
            c = etcd.Client(host=u.hostname, port=u.port, protocol="https", ca_cert=ca)
            out["without_cert"] = c.read("/py/tls").value
        except Exception as e:
            out["without_cert"] = "raised %s" % type(e).__name__
        print(json.dumps(out))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
