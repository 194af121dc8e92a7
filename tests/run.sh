#!/usr/bin/env bash
# Sets up what the test suite needs on this machine, then runs every test.
#   - PostgreSQL: reachable at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test);
#     started with pg_ctlcluster when installed but stopped; the database is created if missing.
#   - The real zenml client (zenml==0.98.0 and kubernetes from PyPI) in tests/.venv, and kubectl,
#     for tests/api/zenml_cli.rs.
#   - schemathesis (PyPI) in tests/.venv-fuzz, for the schema-driven fuzzing of tests/api/fuzzing.rs.
#   - Azurite (npm azurite, pinned by tests/package-lock.json) in tests/node_modules, for the
#     fake Azure's blob storage (tests/api/fakes/azure); AZURITE_BLOB points at its binary.
#   - Debian's chromium and chromium-driver, installed with apt-get when missing, for the
#     dashboard's browser tests (tests/api/dashboard.rs).
# A missing service is an error, never a reason to skip tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

pg_host=127.0.0.1
pg_port=5432
pg_ready() { pg_isready -h "$pg_host" -p "$pg_port" -q; }

if ! command -v pg_isready >/dev/null; then
    echo "error: PostgreSQL client tools are missing; install PostgreSQL (apt-get install postgresql)" >&2
    exit 1
fi
if ! pg_ready; then
    if command -v pg_ctlcluster >/dev/null && command -v pg_lsclusters >/dev/null; then
        echo "starting PostgreSQL"
        pg_lsclusters --no-header | while read -r version cluster _; do
            pg_ctlcluster "$version" "$cluster" start || true
        done
        for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    fi
fi
if ! pg_ready; then
    echo "error: PostgreSQL is not reachable at $pg_host:$pg_port; the PostgreSQL tests cannot run" >&2
    exit 1
fi
database="${TEST_DATABASE_URL##*/}"
database="${database%%\?*}"
if ! psql "$TEST_DATABASE_URL" -qAt -c 'select 1' >/dev/null 2>&1; then
    echo "creating database $database"
    psql "${TEST_DATABASE_URL%/*}/postgres" -q -c "CREATE DATABASE \"$database\""
fi

# The kubernetes package lets `zenml service-connector login` configure kubectl; zenml 0.98
# supports kubernetes>=21.7,<26.
python_packages=("zenml==0.98.0" "kubernetes==25.3.0")
venv=tests/.venv
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(" ".join(p + "==" + m.version(p) for p in ("zenml", "kubernetes")))' 2>/dev/null || true)
if [ "$installed" != "${python_packages[*]}" ]; then
    echo "installing ${python_packages[*]} into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "${python_packages[@]}"
fi
if ! command -v kubectl >/dev/null; then
    echo "error: kubectl is missing; the zenml CLI tests run 'service-connector login' with it," \
        "and the Kustomize render test (tests/api/deploy.rs) runs 'kubectl kustomize'" >&2
    exit 1
fi
export ZENML_CLI="$PWD/$venv/bin/zenml"

# schemathesis, the schema-driven fuzzer that tests/api/fuzzing.rs runs against the live server,
# in a virtualenv of its own: its dependencies are not zenml's.
fuzz_package="schemathesis==4.32.5"
fuzz_venv=tests/.venv-fuzz
installed=$("$fuzz_venv/bin/python" -c 'import importlib.metadata as m; print("schemathesis==" + m.version("schemathesis"))' 2>/dev/null || true)
if [ "$installed" != "$fuzz_package" ]; then
    echo "installing $fuzz_package into $fuzz_venv"
    rm -rf "$fuzz_venv"
    python3 -m venv "$fuzz_venv"
    "$fuzz_venv/bin/pip" install --quiet "$fuzz_package"
fi
export SCHEMATHESIS="$PWD/$fuzz_venv/bin/schemathesis"

# Azurite runs on Node.js. It is reinstalled only when missing or when the lock file differs
# from the one last installed.
if ! command -v node >/dev/null; then
    echo "error: Node.js is missing; install it (apt-get install nodejs npm) to run Azurite" >&2
    exit 1
fi
azurite_blob=tests/node_modules/.bin/azurite-blob
installed_lock=tests/node_modules/.installed-package-lock.json
if [ ! -x "$azurite_blob" ] || ! cmp -s tests/package-lock.json "$installed_lock"; then
    if ! command -v npm >/dev/null; then
        echo "error: npm is missing; install it (apt-get install npm) to install Azurite" >&2
        exit 1
    fi
    echo "installing Azurite into tests/node_modules"
    # npm 11 looks for the lock file in the working directory, whatever --prefix says.
    (cd tests && npm ci --no-audit --no-fund)
    cp tests/package-lock.json "$installed_lock"
fi
export AZURITE_BLOB="$PWD/$azurite_blob"

# The dashboard's tests drive a real, headless Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if ! command -v apt-get >/dev/null; then
        echo "error: chromium and chromium-driver are missing and apt-get is not available" >&2
        exit 1
    fi
    echo "installing chromium and chromium-driver"
    sudo_if_needed=()
    if [ "$(id -u)" != 0 ]; then sudo_if_needed=(sudo); fi
    "${sudo_if_needed[@]}" apt-get install -y --no-install-recommends chromium chromium-driver \
        || { "${sudo_if_needed[@]}" apt-get update && "${sudo_if_needed[@]}" apt-get install -y --no-install-recommends chromium chromium-driver; }
fi

# Doc tests are left out: the crate has none, and an empty closing summary would hide the real one.
# The fuzzer runs last, on its own, with its output shown: how many cases it generated.
cargo test --locked --lib --bins --tests -- --skip fuzzing::
cargo test --locked --test api fuzzing:: -- --show-output
