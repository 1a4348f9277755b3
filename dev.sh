#!/usr/bin/env bash
# Developer entry points of the hub.
#   ./dev.sh demo         install, build the page, start Kafka and Neo4j, run the demo until Ctrl-C, stop what it started
#   ./dev.sh build        install, build the planners' page (frontend/dist) if it is missing or stale
#   ./dev.sh test [ARGS]  install, lint, type-check and check the layers, run the whole suite (ARGS to pytest)
#   ./dev.sh bench [ARGS] install, run every benchmark on its own services; results in bench/results/
#   ./dev.sh lock         resolve the Python dependencies again into requirements/*.lock
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A stop signal sent to this script alone (a supervisor's SIGINT or SIGTERM to its pid, not a terminal's
# Ctrl-C to the whole process group) must stop it at once, also in the middle of a long install: bash runs
# a trap only once the foreground command has ended, and pip, say, never sees a signal sent to bash alone,
# so the script would finish installing and then start the demo regardless. Long steps therefore run
# through `step`, as a child this shell waits for (a trapped signal interrupts `wait`), and the trap
# stops that child and exits. `./dev.sh demo` then execs `hub demo`, which handles the signals itself.
STEP_PID=
on_stop() {
  local name=$1 code=$2
  trap - INT TERM HUP
  if [[ -n $STEP_PID ]]; then
    # A background child of a script ignores SIGINT (bash sets that up); SIGTERM stops it.
    kill -TERM "$STEP_PID" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
  fi
  printf 'stopped by %s\n' "$name" >&2
  exit "$code"
}
trap 'on_stop SIGINT 130' INT
trap 'on_stop SIGTERM 143' TERM
trap 'on_stop SIGHUP 129' HUP

step() {
  # Run "$@" as a background child and wait for it, so that the traps above can act while it runs.
  local rc=0
  "$@" &
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=
  return "$rc"
}

is_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
  # Only as root on Debian-like systems; otherwise the caller says what is missing.
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  if [[ -z ${_APT_UPDATED:-} ]]; then
    DEBIAN_FRONTEND=noninteractive step apt-get update -qq >/dev/null || return 1
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive step apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  if [[ ! -x $PY ]]; then
    local python
    python=$(find_python) || die "Python 3.11 or newer is needed (Debian: apt-get install python3 python3-venv)"
    log "Creating .venv with $python"
    step "$python" -m venv "$VENV"
  fi
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die ".venv has Python older than 3.11; remove .venv and run again"
  # Reinstall only when pyproject.toml or the lock changed since the last install into this venv.
  # Every package comes from the lock, pinned and hashed; the hub itself is installed without them.
  local stamp=$VENV/.hub-installed want
  want=$(cat pyproject.toml requirements/dev.lock | sha256sum | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "Installing the hub with its dev dependencies into .venv (from requirements/dev.lock)"
    step "$PY" -m pip install -q --require-hashes -r requirements/dev.lock
    step "$PY" -m pip install -q --no-deps -e .
    echo "$want" >"$stamp"
  fi
}

docker_answers() {
  command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

java_major() {
  java -version 2>&1 | sed -nE 's/.*version "(1\.)?([0-9]+).*/\2/p' | head -n1
}

ensure_java_maven() {
  # Addresses given in the environment, or a Docker engine, make the local JVM services unnecessary.
  if [[ -n ${HUB_KAFKA_BOOTSTRAP:-} && -n ${HUB_NEO4J_URI:-} ]] || docker_answers; then
    return 0
  fi
  if ! command -v java >/dev/null 2>&1 || [[ $(java_major) -lt 17 ]]; then
    log "Installing Java 17 (Debian openjdk-17-jre-headless)"
    apt_install openjdk-17-jre-headless || true
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    log "Installing Maven (Debian maven)"
    apt_install maven || true
  fi
  command -v java >/dev/null 2>&1 \
    || die "java not found: the local Kafka and Neo4j need Java 17+ and Maven (or Docker, or HUB_KAFKA_BOOTSTRAP/HUB_NEO4J_URI)"
  [[ $(java_major) -ge 17 ]] || die "java is version $(java_major); Kafka and Neo4j need Java 17 or newer"
  command -v mvn >/dev/null 2>&1 \
    || die "mvn not found: Maven fetches Kafka and Neo4j from Maven Central on first use (Debian: apt-get install maven)"
}

ensure_chromium() {
  # The browser tests drive Debian's chromium (no browser download at run time).
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    return 0
  fi
  log "Installing Debian chromium for the browser tests"
  apt_install chromium || warn "chromium is not installed and could not be installed here; browser tests will fail"
}

cmd_test() {
  ensure_venv
  ensure_java_maven
  ensure_chromium
  # The test services are ours: stop them when the run ends (unless another test run still uses them).
  export HUB_TEST_STOP_SERVICES=${HUB_TEST_STOP_SERVICES:-1}
  ensure_frontend_deps
  # One check a line, each failing the run: Python lint, format and types; the locks; the page's
  # generated operations, types and lint.
  log "Checking the code"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  "$VENV/bin/mypy"
  "$VENV/bin/mypy" requirements/lock.py hatch_build.py
  # The layers (pyproject.toml [tool.importlinter]); tests/test_layers.py checks for import cycles.
  "$VENV/bin/lint-imports"
  "$PY" requirements/lock.py check
  (cd frontend && npm run --silent codegen:check)
  (cd frontend && npm run --silent typecheck)
  (cd frontend && npm run --silent lint)
  log "Running the tests"
  # The whole suite, unless the arguments name test files or folders (`./dev.sh test tests/hub`).
  local targets=(tests) arg
  for arg in "$@"; do
    if [[ $arg != -* && -e ${arg%%::*} ]]; then
      targets=()
      break
    fi
  done
  local rc=0
  "$PY" -m pytest "${targets[@]}" "$@" || rc=$?
  if [[ $rc -eq 5 ]]; then
    printf 'error: pytest ran no tests\n' >&2
    rc=1
  fi
  return "$rc"
}

ensure_node() {
  # The front end's checks and build need Node.js 20+ with npm.
  if ! command -v npm >/dev/null 2>&1; then
    log "Installing Node.js and npm (Debian nodejs, npm)"
    apt_install nodejs npm || true
  fi
  command -v npm >/dev/null 2>&1 || die "npm not found: the front end needs Node.js 20 or newer with npm"
}

ensure_frontend_deps() {
  # Exactly the packages of frontend/package-lock.json, again only when the lock changed.
  ensure_node
  if [[ ! frontend/node_modules/.package-lock.json -nt frontend/package-lock.json ]]; then
    log "Installing the front end's packages (npm ci)"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

cmd_lock() {
  ensure_venv
  log "Resolving the Python dependencies into requirements/*.lock"
  "$PY" requirements/lock.py update
}

cmd_build() {
  ensure_venv
  ensure_node
  "$PY" -m devstack.page_build
}

cmd_demo() {
  ensure_venv
  ensure_java_maven
  # hub demo builds the page in a checkout when it is missing or stale; that needs npm.
  ensure_node
  # hub demo starts the services that are not running and, at the end (Ctrl-C or --duration), stops
  # only those it started: services someone else runs are left alone.
  exec "$VENV/bin/hub" demo "$@"
}

cmd_bench() {
  ensure_venv
  ensure_java_maven
  log "Running the benchmarks (results in bench/results/)"
  "$PY" -m bench "$@"
}

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

case ${1:-} in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  build) shift; cmd_build "$@" ;;
  lock) shift; cmd_lock "$@" ;;
  -h | --help | help | "") usage ;;
  *) usage >&2; die "unknown command: $1" ;;
esac
