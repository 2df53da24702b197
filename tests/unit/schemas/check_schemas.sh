#!/usr/bin/env bash
# Validate schemas/: every schema against its metaschema, every example against the envelope
# and its type's schema (valid-*.json pass, invalid-*.json fail). Details: check_schemas.py.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=${IMP_SOURCE_DIR:-$(cd "$here/../../.." && pwd)}

if ! python3 -c 'import jsonschema' 2>/dev/null; then
    echo "check_schemas: python3-jsonschema is not installed (deploy/bootstrap.sh installs it)" >&2
    exit 1
fi
exec python3 "$here/check_schemas.py" "$source_dir/schemas"
