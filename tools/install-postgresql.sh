#!/usr/bin/env bash
# Usage: tools/install-postgresql.sh [--help]
#
# Installs PostgreSQL 15 (a FerretDB backend that can use an index for the
# readings of one flat, issue [P]) from Debian's packages without touching the
# system: `apt-get download` of postgresql-15, postgresql-client-15 and the
# libraries they link that a slim machine lacks, unpacked with dpkg-deb once per
# machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/postgresql-15-<hash>/
# and linked as .tools/bin/{initdb,postgres,pg_ctl,pg_isready,psql} (wrappers
# that set LD_LIBRARY_PATH to the unpacked tree; `ldd` checks each binary finds
# every library it links). PostgreSQL finds its share/ and lib/ folders
# relative to its own binary, so the unpacked tree works where it lies.
# JIT is not installed: libllvm14 (~100 MB) is left out; llvmjit.so is loaded
# only when jit is on, and stack/src/postgres.ts runs the server with jit=off.
# The server uses the machine's /usr/share/zoneinfo (Debian's build reads the
# system time zones; tzdata is on every Debian machine) and the C locale.
#
# As root: initdb, postgres and pg_ctl refuse to run as uid 0. The wrappers then
# run them in a new user namespace in which the caller's uid 0 is seen as uid
# 65534 (`unshare --user --map-user=65534 --map-group=65534`): the program sees
# a non-root user that owns its data folder, while the kernel still checks
# every file access against the real uid 0, so the data folder stays owned by
# root, may lie in a 0700 folder (mkdtemp's), and the binaries may stay in
# /root/.cache. No privilege is dropped or gained and no file changes owner;
# unshare execs the program, so the process id is the server's own. (Running
# as `nobody` with setpriv/runuser was the other way: it needs the data folder
# chowned and every parent folder, /root/.cache included, opened to others.)
# Where user namespaces are refused (some container runtimes), the wrappers
# say so and exit 1: run flatline as an unprivileged user there.
#
# When apt has no package lists yet and we are root, runs `apt-get update` once.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a reinstall.
# A default tool: npm test runs it (stack/test/postgres.test.ts), and npm start
# installs it for `flatline up --db postgresql`.
#
# summary: PostgreSQL 15 (a FerretDB backend: initdb, postgres, pg_ctl, pg_isready, psql), Debian packages unpacked into the cache
# cold: ~5 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tools_args "${BASH_SOURCE[0]}" "$@"

version="15"

# pg_wrapper OUT NAME: .tools/bin/NAME for usr/lib/postgresql/15/bin/NAME, as
# tools_debian_wrapper writes it (which also checks the libraries), plus the
# user namespace for the server programs when run as root.
pg_wrapper() {
  local out="$1" name="$2"
  tools_debian_wrapper postgresql "$out" "$name" "usr/lib/postgresql/$version/bin/$name"
  case "$name" in
    initdb | postgres | pg_ctl) ;;
    *) return 0 ;;
  esac
  local libdir
  libdir="usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
  cat >"$out/$name" <<WRAPPER
#!/usr/bin/env bash
root="\$(cd "\$(dirname "\$(readlink -f "\${BASH_SOURCE[0]}")")/../root" && pwd)"
export LD_LIBRARY_PATH="\$root/$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
bin="\$root/usr/lib/postgresql/$version/bin/$name"
if [[ "\$(id -u)" == "0" ]]; then
  # $name refuses uid 0: see tools/install-postgresql.sh (a user namespace, same real uid).
  if ! unshare --user --map-user=65534 --map-group=65534 true 2>/dev/null; then
    echo "$name: PostgreSQL refuses to run as root, and this machine refuses user namespaces (unshare --user), which flatline uses to run it as root: run as an unprivileged user" >&2
    exit 1
  fi
  exec unshare --user --map-user=65534 --map-group=65534 "\$bin" "\$@"
fi
exec "\$bin" "\$@"
WRAPPER
  chmod +x "$out/$name"
}

build_postgresql() {
  local out="$1" name
  # What postgres, initdb and psql link beyond what a slim Debian 12 has
  # (libc, libssl3's peers gnutls/zstd/lz4/zlib/pam/systemd/audit come with apt).
  tools_debian_unpack postgresql "$out" postgresql-15 postgresql-client-15 libpq5 \
    libicu72 libxml2 libldap-2.5-0 libsasl2-2 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 \
    libreadline8 libssl3
  for name in initdb postgres pg_ctl pg_isready psql; do
    pg_wrapper "$out" "$name"
  done
  "$out/postgres" --version >&2
  "$out/psql" --version >&2
}
# The key follows what builds the entry, not the comments.
key="postgresql-$version-$(tools_hash_of "$(declare -f build_postgresql pg_wrapper tools_debian_unpack tools_debian_wrapper)" "$version")"

tools_install postgresql "$version" "$key" postgres build_postgresql none
for name in initdb pg_ctl pg_isready psql; do
  tools_link "$FLATLINE_CACHE_ROOT/$key/bin/$name" "$name"
done
