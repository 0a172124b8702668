#!/usr/bin/env bash
# Builds a real etcd, kube-apiserver or the node components from the Go module proxy into
# the tools folder.
# Neither can be `go install`ed: both modules carry replace directives pointing at
# directories of their own repositories, so each is built from a writable copy of the
# module with those replaces turned into requirements of the published versions.
#   usage: build-kube-tools.sh etcd|kube-apiserver VERSION OUT_BINARY
#          build-kube-tools.sh kube-node VERSION OUT_DIR/kubelet
#   (kube-node builds kubelet, kube-controller-manager, kube-scheduler, kube-proxy and kubectl
#   into OUT_DIR, the kubelet last, so its presence means all five are there)
set -euo pipefail

what=$1 version=$2 out=$3
src_root=$(dirname "$out")/../src
mkdir -p "$(dirname "$out")" "$src_root"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

# A module's local (./ or ../) replace targets, one module path a line.
local_replaces() {
  go mod edit -json | node -e '
    const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const r of m.Replace ?? []) if (/^\.\.?\//.test(r.New.Path)) console.log(r.Old.Path);'
}
required_version() {
  go mod edit -json | node -e '
    const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const r = (m.Require ?? []).find((x) => x.Path === process.argv[1]);
    console.log(r ? r.Version : "");' "$1"
}
copy_module() {
  local mod=$1 dest=$2 dir
  dir=$(go mod download -json "$mod" | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    if (j.Error) { console.error(j.Error); process.exit(1); }
    console.log(j.Dir);')
  rm -rf "$dest" && cp -r "$dir" "$dest" && chmod -R u+w "$dest"
}

case "$what" in
etcd)
  dest=$src_root/etcd-$version
  copy_module "go.etcd.io/etcd/server/v3@$version" "$dest"
  cd "$dest"
  # The requires are already pinned at the same release; only the replaces go.
  for m in $(local_replaces); do go mod edit -dropreplace="$m"; done
  go build -trimpath -o "$out.tmp" .
  ;;
kube-apiserver | kube-node)
  minor=${version#v1.}        # 36.3
  staging=v0.$minor           # staging modules are published as v0.<minor>.<patch>
  dest=$src_root/kubernetes-$version
  copy_module "k8s.io/kubernetes@$version" "$dest"
  cd "$dest"
  export GOWORK=off # the module ships a go.work naming its staging directories
  for m in $(local_replaces); do
    go mod edit -dropreplace="$m"
    if [ "$(required_version "$m")" = v0.0.0 ]; then go mod edit -require="$m@$staging"; fi
  done
  # Only the repository's own examples use it and it is not published for this minor.
  go mod edit -droprequire=k8s.io/sample-apiserver
  major=${version#v}; major=${major%%.*}
  minor_only=${minor%%.*}
  ldflags="-X k8s.io/component-base/version.gitVersion=$version \
    -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor_only"
  if [ "$what" = kube-apiserver ]; then
    go build -trimpath -ldflags "$ldflags" -o "$out.tmp" ./cmd/kube-apiserver
  else
    outdir=$(dirname "$out")
    for cmd in kube-controller-manager kube-scheduler kube-proxy kubectl; do
      go build -trimpath -ldflags "$ldflags" -o "$outdir/$cmd" ./cmd/$cmd
    done
    go build -trimpath -ldflags "$ldflags" -o "$out.tmp" ./cmd/kubelet
    # pause, the sandbox's first process: a static C program (no registry to pull it from).
    gcc -Os -static -o "$outdir/pause" build/pause/linux/pause.c
  fi
  ;;
*)
  echo "unknown tool $what" >&2
  exit 2
  ;;
esac
mv -f "$out.tmp" "$out"
# The copy is only needed for the build; the module cache keeps the download.
rm -rf "$dest"
