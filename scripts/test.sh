#!/usr/bin/env bash
# The project's one test command: starts moto (S3), Azurite (Azure Blob) and fake-gcs-server (GCS) on loopback, runs the whole
# cargo test suite against them, and stops them on any exit. Extra args go to cargo test:
#   scripts/test.sh                    # everything
#   scripts/test.sh s3 -- --nocapture  # a filter and test-binary flags
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/test-servers.sh
trap servers_stop EXIT
trap 'exit 130' INT   # turn signals into a normal exit, so the EXIT trap runs
trap 'exit 143' TERM
# A missing server is a failure, never a reason to skip the tests that need it.
servers_start || { echo "test.sh: FAILED to start the test object stores (see above); no tests were run" >&2; exit 1; }
echo "test.sh: servers up: S3 (moto) $ASSETFS_TEST_S3_URL at $AWS_ENDPOINT; Azure (Azurite) $ASSETFS_TEST_AZ_URL at $AZURITE_BLOB_STORAGE_URL; GCS (fake-gcs-server) $ASSETFS_TEST_GCS_URL at http://127.0.0.1:$GCS_PORT"
cargo test --locked --all-targets "$@"
