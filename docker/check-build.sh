#!/usr/bin/env bash
# Replays the Dockerfile on a machine without a Docker engine, to catch a broken image before
# anyone builds it: the build context is cut by .dockerignore, then each stage's COPY, WORKDIR,
# ENV and RUN are carried out in a folder of its own (the stage's "/"), with the host's node and
# npm standing in for the base image. The final stage is then started as the image would start
# it (ENTRYPOINT + CMD, its ENV, on 127.0.0.1 and a free port), its HEALTHCHECK is run, the demo
# is run with the production dependencies alone, and SIGTERM must stop it with exit 0.
#
# Only the Dockerfile forms keyrelay uses are understood; anything else stops the replay with a
# message rather than being skipped. Usage: docker/check-build.sh [Dockerfile]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=${1:-$repo/Dockerfile}
work=$(mktemp -d "${TMPDIR:-/tmp}/keyrelay-image.XXXXXX")
server_pid=''

cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '==> %s\n' "$*"; }
fail() {
  printf 'check-build: %s\n' "$*" >&2
  exit 1
}
# A process that could not listen says so: fail naming the port, not the step.
in_use() {
  local address
  address=$(grep -o 'address already in use [^"\\]*' "$1" | head -n 1 | sed 's/address already in use //' || true)
  [[ -z $address ]] || fail "port ${address##*:} is already in use ($address): stop what listens there and run the check again"
}

# What a RUN step may take from the host: where node and npm are, npm's cache and settings, and
# a proxy to the registry if there is one. Nothing else (a vitest run's NODE_ENV, say) leaks in.
host_env=("PATH=$PATH" "HOME=$HOME")
while IFS='=' read -r name _; do
  case $name in
    npm_config_* | NPM_CONFIG_* | http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY) host_env+=("$name=${!name}") ;;
  esac
done < <(env)

# --- The build context ----------------------------------------------------------------------
context=$work/context
mkdir -p "$context"
excludes=()
if [[ -f $repo/.dockerignore ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -z $line || $line == \#* ]] && continue
    [[ $line == !* ]] && fail ".dockerignore: exceptions (\"$line\") are not replayed"
    excludes+=("--exclude=./${line#/}")
  done <"$repo/.dockerignore"
fi
say "build context: $repo, less ${#excludes[@]} .dockerignore patterns"
tar -C "$repo" --anchored --no-wildcards-match-slash "${excludes[@]}" -cf - . | tar -C "$context" -xf -

# --- The stages ---------------------------------------------------------------------------
declare -A stage_root=()
stage=-1
root=''
workdir=/
stage_env=()
user=''
entrypoint=''
cmd=''
healthcheck=''

# A path inside the current stage.
inside() {
  if [[ $1 == /* ]]; then printf '%s%s' "$root" "$1"; else printf '%s%s/%s' "$root" "${workdir%/}" "$1"; fi
}

copy() {
  local -a words srcs=()
  local from='' word dest target src
  read -r -a words <<<"$1"
  for word in "${words[@]}"; do
    case $word in
      --from=*) from=${word#--from=} ;;
      --chown=* | --chmod=* | --link) ;;
      --*) fail "COPY $word is not replayed" ;;
      *) srcs+=("$word") ;;
    esac
  done
  ((${#srcs[@]} >= 2)) || fail "COPY needs a source and a destination: COPY $1"
  dest=${srcs[-1]}
  unset 'srcs[-1]'
  target=$(inside "$dest")
  for src in "${srcs[@]}"; do
    if [[ -n $from ]]; then
      [[ -n ${stage_root[$from]:-} ]] || fail "COPY --from=$from: no such stage"
      src=${stage_root[$from]}/${src#/}
    else
      [[ $src != *[*?]* ]] || fail "COPY $src: wildcards are not replayed"
      src=$context/${src#./}
    fi
    [[ -e $src ]] || fail "COPY: ${src#"$work"/} is not in the build context (left out by .dockerignore, or missing from the repository?)"
    if [[ -d $src ]]; then
      mkdir -p "$target"
      cp -a "$src/." "$target/"
    elif [[ $dest == */ || ${#srcs[@]} -gt 1 ]]; then
      mkdir -p "$target"
      cp -a "$src" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp -a "$src" "$target"
    fi
  done
}

# ENV k=v k2=v2, or the older ENV k v.
set_env() {
  local -a words
  local word
  read -r -a words <<<"$1"
  if [[ ${words[0]} != *=* ]]; then
    stage_env+=("${words[0]}=${1#"${words[0]}" }")
    return
  fi
  for word in "${words[@]}"; do
    [[ $word == *=* ]] || fail "ENV $1: expected name=value pairs"
    stage_env+=("$word")
  done
}

# Instructions one per line: comments dropped, continuation lines joined.
instructions() {
  awk '
    { sub(/\r$/, "") }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { if (buf == "") next }
    {
      line = $0
      if (sub(/\\[ \t]*$/, "", line)) { buf = buf line " "; next }
      line = buf line; buf = ""
      sub(/^[ \t]+/, "", line)
      if (line != "") print line
    }
  ' "$dockerfile"
}

while IFS= read -r -u 3 instruction; do
  keyword=${instruction%%[[:space:]]*}
  args=${instruction#"$keyword"}
  args="${args#"${args%%[![:space:]]*}"}"
  case ${keyword^^} in
    FROM)
      stage=$((stage + 1))
      root=$work/stage$stage
      mkdir -p "$root"
      workdir=/
      stage_env=()
      user=''
      entrypoint=''
      cmd=''
      healthcheck=''
      stage_root[$stage]=$root
      if [[ $args =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+)$ ]]; then stage_root[${BASH_REMATCH[1]}]=$root; fi
      say "FROM $args (the host's node $(node --version) stands in for it)"
      ;;
    WORKDIR)
      workdir=$args
      [[ $workdir == /* ]] || fail "WORKDIR $args: only absolute paths are replayed"
      mkdir -p "$root$workdir"
      ;;
    ENV) set_env "$args" ;;
    COPY)
      say "COPY $args"
      copy "$args"
      ;;
    RUN)
      # A cache mount only speeds the build up; the host's own npm cache plays its part.
      while [[ $args == --mount=type=cache,* ]]; do
        args=${args#--mount=type=cache,*[[:space:]]}
        args="${args#"${args%%[![:space:]]*}"}"
      done
      [[ $args != \[* ]] || fail "RUN in exec form is not replayed: RUN $args"
      [[ $args != --* ]] || fail "RUN options are not replayed: RUN $args"
      say "RUN $args"
      (cd "$root$workdir" && env -i "${host_env[@]}" "${stage_env[@]}" bash -euo pipefail -c "$args") </dev/null ||
        fail "RUN $args: failed"
      ;;
    USER) user=$args ;;
    HEALTHCHECK) healthcheck=$args ;;
    ENTRYPOINT) entrypoint=$args ;;
    CMD) cmd=$args ;;
    EXPOSE | LABEL | STOPSIGNAL | ARG) ;;
    *) fail "$keyword is not replayed" ;;
  esac
done 3< <(instructions)

((stage >= 0)) || fail "$dockerfile has no FROM"
final=$root$workdir

# --- The image as it would start ------------------------------------------------------------
[[ -n $user && $user != root && $user != 0 && $user != 0:* ]] || fail "the image runs as root: add USER"
[[ -n $healthcheck ]] || fail "the image has no HEALTHCHECK"
[[ -n $entrypoint$cmd ]] || fail "the image has neither ENTRYPOINT nor CMD"
[[ ! -e $final/node_modules/typescript && ! -e $final/node_modules/vitest ]] || fail "the final stage holds dev dependencies"
[[ ! -e $final/src && ! -e $final/test ]] || fail "the final stage holds sources or tests"

# JSON arrays (exec form) into words, one per line.
json_words() {
  node -e 'for (const s of process.argv.slice(1)) { if (!s) continue; const v = JSON.parse(s); if (!Array.isArray(v)) process.exit(3); for (const w of v) console.log(w); }' "$@" ||
    fail "only the exec form [\"...\"] of ENTRYPOINT, CMD and HEALTHCHECK CMD is replayed"
}
mapfile -t start < <(json_words "$entrypoint" "$cmd")
health_cmd=${healthcheck#*CMD }
[[ $health_cmd != "$healthcheck" ]] || fail "HEALTHCHECK $healthcheck: expected HEALTHCHECK [options] CMD [...]"
mapfile -t probe < <(json_words "$health_cmd")

run_env=("PATH=$PATH" "${stage_env[@]}" HOST=127.0.0.1 PORT=0 LOG_LEVEL=info)
log=$work/server.log
say "start: ${start[*]} (in $workdir, as the image would, on 127.0.0.1 and a free port)"
(cd "$final" && exec env -i "${run_env[@]}" "${start[@]}") >"$log" 2>&1 </dev/null &
server_pid=$!

port=''
for _ in $(seq 1 150); do
  port=$(grep -o '"url":"http://127\.0\.0\.1:[0-9]*"' "$log" | head -n 1 | grep -o '[0-9]*"$' | tr -d '"' || true)
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || {
    cat "$log" >&2
    in_use "$log"
    fail "the gateway exited at start"
  }
  sleep 0.2
done
[[ -n $port ]] || {
  cat "$log" >&2
  fail "the gateway did not say where it listens within 30 s"
}
say "listening on 127.0.0.1:$port"

(cd "$final" && env -i "PATH=$PATH" "${stage_env[@]}" "PORT=$port" "${probe[@]}") </dev/null || fail "HEALTHCHECK failed: ${probe[*]}"
say "HEALTHCHECK passed"

# On a free port: the image's PORT may be taken on this machine (a gateway started by npm start),
# and what this step checks is the dependencies, not the port.
(cd "$final" && env -i "PATH=$PATH" "${stage_env[@]}" PORT=0 node dist/dev/demo.js) </dev/null >"$work/demo.log" 2>&1 || {
  cat "$work/demo.log" >&2
  in_use "$work/demo.log"
  fail "the demo failed with the production dependencies alone"
}
say "demo ran with the production dependencies alone"

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=''
((status == 0)) || {
  cat "$log" >&2
  fail "SIGTERM: the gateway exited with $status, not 0"
}
say "SIGTERM: exited 0"
say "image replay passed"
