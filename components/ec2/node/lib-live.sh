# shellcheck shell=bash
# lib-live.sh: what a running node takes from the stack without a restart beyond the live directives
# (node.sh apply_live): the check of the desired settings against what preview allows, the app user's ACL
# (appAclGrants), renewed TLS material, the CA pin (also at boot) and the replication user on a master
# from before it existed. Functions only, sourced by node.sh in
# both topologies, shipped through SSM (the user-data has no room left). Uses node.sh's rcli, log, write_file, ssm_get_batch,
# ssm_value_to_file, publish_status, applied_version and the node.env facts:
#   APP_USER APP_ACL_RULES APP_ACL_REFUSED LIVE_DIRECTIVES TLS TLS_CA TLS_CA_SHA256 TLS_CERT TLS_KEY SSM_TLS_* EXPORTER
#   REPLICATION_USER REPLICATION_ACL_RULES EXPORTER_DIR
# shellcheck disable=SC2154  # variables come from node.env and node.sh

# desired_app_rules: the app user's rules the desired settings carry (empty when they carry none).
desired_app_rules() { awk '$1 == "app-acl" { $1 = ""; sub(/^ +/, ""); print; exit }' "$DESIRED_FILE" 2>/dev/null || true; }

# desired_refusals: what the desired settings ask that this node does not do, one line each. Only pulumi up
# writes the parameter, after preview's checks; whatever else is in it is refused here too: a directive the
# stack does not change live (LIVE_DIRECTIVES: no `dir`, no `enable-debug-command`), app rules that do not
# start with the stack's default, or a grant preview refuses (APP_ACL_REFUSED, from appAcl.ts).
desired_refusals() {
  local key rules rule
  local -a extra
  while read -r key; do
    [[ " $LIVE_DIRECTIVES " == *" $key "* ]] || echo "set $key: not a directive the stack changes live"
  done < <(awk '$1 == "set" { print $2 }' "$DESIRED_FILE" 2>/dev/null || true)
  rules=$(desired_app_rules)
  [ -n "$rules" ] || return 0
  if [ "$rules" != "$APP_ACL_RULES" ] && [ "${rules#"$APP_ACL_RULES "}" = "$rules" ]; then
    echo "app-acl: does not start with the stack's default rules"
    return 0
  fi
  read -r -a extra <<<"${rules#"$APP_ACL_RULES"}"
  for rule in "${extra[@]}"; do
    if ! [[ $rule =~ ^[+-]@?[A-Za-z0-9_|-]+$ ]]; then
      echo "app-acl $rule: not a command rule"
    elif [[ " $APP_ACL_REFUSED " == *" ${rule,,} "* ]]; then
      echo "app-acl $rule: grants admin or dangerous commands without naming them, or one never granted"
    fi
  done
}

# report_refusals: logs and reports in the node's status what desired_refusals finds, once per settings version.
report_refusals() {
  local refusals line memo
  refusals=$(desired_refusals)
  memo=${refusals:+$(applied_version) $refusals}
  [ "$memo" = "$(cat "$CONF_DIR/refused" 2>/dev/null || true)" ] && return 0
  printf '%s\n' "$memo" | write_file "$CONF_DIR/refused" 0640 root:root >/dev/null
  [ -n "$refusals" ] || return 0
  while read -r line; do log "warning: desired settings $(applied_version) refused: $line"; done <<<"$refusals"
  publish_status ok "settings $(applied_version) applied in part; refused: $(paste -sd ';' <<<"$refusals")"
}

# app_acl_rules: the app user's rules (components/ec2/node/appAcl.ts): the stack's desired settings carry them
# with the team's appAclGrants; desired settings written before they did fall back to the user-data's default.
app_acl_rules() {
  local rules
  rules=$(desired_app_rules)
  # Rules the node refuses leave the app user as it is (its last applied rules, or the default).
  # (Captured first: grep -q closing a pipe early would fail the pipeline and let refused rules through.)
  if [ -n "$rules" ] && grep -q '^app-acl' <<<"$(desired_refusals)"; then
    rules=$(cat "$APP_ACL_APPLIED" 2>/dev/null || true)
  fi
  printf '%s\n' "${rules:-$APP_ACL_RULES}"
}

# apply_app_acl: new app rules (appAclGrants changed) apply live. ACL SETUSER resets the user's commands, keys
# and channels and sets the new rules in one step, keeping its passwords; open connections are checked
# against them from their next command. users.acl keeps them for the next start.
apply_app_acl() {
  local rules reply
  local -a args
  rules=$(app_acl_rules)
  [ "$(cat "$APP_ACL_APPLIED" 2>/dev/null || true)" = "$rules" ] && return 0
  read -r -a args <<<"$rules"
  reply=$({ rcli "$NODE_IP" "$REDIS_PORT" acl setuser "$APP_USER" nocommands resetkeys resetchannels "${args[@]}" || true; } | tr -d '\r')
  if [ "$reply" != OK ]; then
    log "warning: ACL SETUSER $APP_USER was refused ($reply); it keeps its rules until the next start"
    return 0
  fi
  awk -v u="$APP_USER" -v r="$rules" '$1 == "user" && $2 == u { print "user", u, "on", $4, r; next } { print }' \
    "$CONF_DIR/users.acl" | write_file "$CONF_DIR/users.acl" 0640 root:redis >/dev/null
  printf '%s\n' "$rules" | write_file "$APP_ACL_APPLIED" 0640 root:root >/dev/null
  log "live: $APP_USER ACL -> $rules"
}

# heal_replication_user: a replica logs in to its master as REPLICATION_USER. A master launched by a stack
# from before that user existed lacks it (a running node never re-runs its user-data, and rebuilds its ACL
# file from its own at every start), so a replica launched since could never sync from it. While this
# node's link to its master is down, it checks the master as admin (the automation's user) and creates the
# user there, with the rules and password hash of its own ACL file. At most every 5 s; never fails.
heal_replication_user() {
  [ "$SECONDS" -ge "${REPLICATION_HEAL_AT:-0}" ] || return 0
  REPLICATION_HEAL_AT=$((SECONDS + 5))
  local info host port hash reply
  info=$({ rcli "$NODE_IP" "$REDIS_PORT" info replication 2>/dev/null || true; } | tr -d '\r')
  grep -qx 'master_link_status:down' <<<"$info" || return 0
  host=$(awk -F: '$1 == "master_host" { print $2 }' <<<"$info")
  port=$(awk -F: '$1 == "master_port" { print $2 }' <<<"$info")
  [ -n "$host" ] && [ -n "$port" ] || return 0
  # A master that does not answer (dead, partitioned) is left alone at once: its replica is about to fail over.
  reply=$(RCLI_TIMEOUT=2 rcli "$host" "$port" acl getuser "$REPLICATION_USER" 2>/dev/null | tr -d '\r') || return 0
  [ -z "$reply" ] || return 0
  hash=$(awk -v u="$REPLICATION_USER" '$1 == "user" && $2 == u { for (i = 3; i <= NF; i++) if ($i ~ /^#/) print substr($i, 2) }' "$CONF_DIR/users.acl")
  [ -n "$hash" ] || return 0
  # shellcheck disable=SC2086  # the rules are separate words
  if [ "$({ RCLI_TIMEOUT=2 rcli "$host" "$port" acl setuser "$REPLICATION_USER" on "#$hash" $REPLICATION_ACL_RULES 2>/dev/null || true; } | tr -d '\r')" = OK ]; then
    log "replication: created user $REPLICATION_USER on master $host:$port (launched before the user existed)"
  fi
}

# ca_pin_problem PEM: why PEM is not the CA this node was created with, or nothing when it is. The user-data
# carries the SHA-256 of that CA's DER (TLS_CA_SHA256): a CA written to the parameter since, by mistake or by
# whoever else may write it, is refused with whatever chains to it (the cluster bus trusts certificates
# alone). What openssl cannot read hashes as nothing, and is refused too.
ca_pin_problem() {
  local got
  got=$(printf '%s\n' "$1" | { openssl x509 -outform DER 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
  [ "$got" = "${TLS_CA_SHA256:-}" ] ||
    echo "the CA in $SSM_TLS_CA (SHA-256 ${got:0:16}...) is not the one this node was created with (${TLS_CA_SHA256:0:16}...)"
}

# refresh_tls_live: a certificate renewed in SSM is loaded without a restart. The stack issues a new one on
# the first pulumi up within 30 days of the old one's expiry (cluster.ts earlyRenewalHours); fetch_desired
# reads it with the settings. It is checked first (the CA is the pinned one, the certificate chains to it,
# the key is its key), installed,
# and Redis 7 re-reads its TLS files on CONFIG SET of their paths: clients, replication and the cluster bus
# use them from their next connection. The exporter gets the CA again. Sentinel cannot reload them: it
# serves the new certificate from its next restart (a nodeGeneration roll, docs/runbook.md).
refresh_tls_live() {
  [ "$TLS" = yes ] || return 0
  local dir reply serial problem
  [ -n "${SSM_VALUES[$SSM_TLS_CERT]+set}" ] && [ -n "${SSM_VALUES[$SSM_TLS_CA]+set}" ] || return 0
  if printf '%s\n' "${SSM_VALUES[$SSM_TLS_CERT]}" | cmp -s - "$TLS_CERT" &&
    printf '%s\n' "${SSM_VALUES[$SSM_TLS_CA]}" | cmp -s - "$TLS_CA"; then
    return 0
  fi
  ssm_get_batch "$SSM_TLS_KEY" 2>/dev/null || {
    log "warning: a new certificate is in SSM but its key cannot be read ($SSM_TLS_KEY); keeping the installed one"
    return 0
  }
  problem=$(ca_pin_problem "${SSM_VALUES[$SSM_TLS_CA]}")
  if [ -n "$problem" ]; then
    log "warning: $problem; keeping the installed TLS material"
    return 0
  fi
  dir=$(mktemp -d)
  printf '%s\n' "${SSM_VALUES[$SSM_TLS_CA]}" >"$dir/ca.crt"
  printf '%s\n' "${SSM_VALUES[$SSM_TLS_CERT]}" >"$dir/node.crt"
  (umask 077 && printf '%s\n' "${SSM_VALUES[$SSM_TLS_KEY]}" >"$dir/node.key")
  if ! openssl verify -CAfile "$dir/ca.crt" "$dir/node.crt" >/dev/null 2>&1; then
    log "warning: the certificate in $SSM_TLS_CERT does not chain to the CA in $SSM_TLS_CA; keeping the installed one"
  elif [ "$(openssl x509 -in "$dir/node.crt" -noout -pubkey 2>/dev/null)" != "$(openssl pkey -in "$dir/node.key" -pubout 2>/dev/null)" ]; then
    log "warning: the key in $SSM_TLS_KEY is not the certificate's; keeping the installed one"
  else
    ssm_value_to_file "$SSM_TLS_CA" "$TLS_CA" 0644
    ssm_value_to_file "$SSM_TLS_CERT" "$TLS_CERT" 0644
    ssm_value_to_file "$SSM_TLS_KEY" "$TLS_KEY" 0640
    serial=$(openssl x509 -in "$TLS_CERT" -noout -serial -enddate | tr '\n' ' ')
    reply=$({ rcli "$NODE_IP" "$REDIS_PORT" config set tls-cert-file "$TLS_CERT" tls-key-file "$TLS_KEY" \
      tls-ca-cert-file "$TLS_CA" || true; } | tr -d '\r')
    if [ "$reply" = OK ]; then
      log "live: TLS material renewed from SSM and loaded ($serial)"
    else
      log "warning: Redis did not reload the renewed TLS material ($reply); it loads it at its next start ($serial)"
    fi
    write_file "$EXPORTER_DIR/ca.crt" 0644 root:root <"$TLS_CA" | grep -q changed &&
      { systemctl restart --no-block "$EXPORTER" || log "warning: could not restart $EXPORTER"; }
  fi
  rm -rf "$dir"
}

# elapsed_ms START: milliseconds since START (an $EPOCHREALTIME reading).
elapsed_ms() {
  local now=$EPOCHREALTIME
  echo $(((${now/./} - ${1/./}) / 1000))
}

# replica_offset HOST PORT: the replication offset the replica on HOST has applied (empty if it does not answer).
replica_offset() {
  { rcli "$1" "$2" info replication 2>/dev/null || true; } | tr -d '\r' | awk -F: '$1 == "slave_repl_offset" { print $2 }'
}

# crash_takeover: node.sh handoff found Redis not answering. As the unit's ExecStopPost, after the main
# process ended, systemd says how: SERVICE_RESULT is "success" for a stop systemd asked for (the ExecStop
# handoff already ran) and names the failure otherwise (signal, core-dump, exit-code, oom-kill): a crash.
# (On a failure systemd skips ExecStop: only ExecStopPost runs.) A server that is stuck but alive is never
# here: the process must be gone, so a stall is left to the node timeout.
# A master's most up-to-date replica takes over at once with CLUSTER FAILOVER FORCE: the other masters elect
# it without the node timeout and the election delay, and the restarted process (RestartSec later) finds a
# newer owner of its slots and becomes its replica. Writes the crashed master acknowledged and had not yet
# replicated are lost, as in any failover (asynchronous replication). lib-sentinel.sh has the Sentinel one.
crash_takeover() {
  [ -n "${SERVICE_RESULT:-}" ] && [ "$SERVICE_RESULT" != success ] || return 0
  local started=$EPOCHREALTIME id addr flags of slots rest myid="" replicas=() best="" best_offset=-1 offset chosen=""
  # Read in bash, no process on the way: the other masters start the election only when asked, and every
  # process spawned on a busy host costs tens of milliseconds of the write gap.
  [ -r "$DATA_DIR/nodes.conf" ] || return 0
  # id addr flags master ping-sent pong-received epoch link slots...: a master with slots.
  while read -r id addr flags of _ _ _ _ slots; do
    if [[ $flags == *myself*master* && -n $slots ]]; then myid=$id; fi
  done <"$DATA_DIR/nodes.conf"
  [ -n "$myid" ] || return 0
  while read -r id addr flags of rest; do
    if [[ $of == "$myid" && $flags == *slave* && $flags != *fail* ]]; then replicas+=("${addr%@*}"); fi
  done <"$DATA_DIR/nodes.conf"
  if [ "${#replicas[@]}" = 1 ]; then
    # One replica: nothing to choose between (if it does not answer, neither would it to the question).
    best=${replicas[0]} chosen="the only replica"
  else
    for addr in ${replicas[@]+"${replicas[@]}"}; do
      offset=$(RCLI_TIMEOUT=1 replica_offset "${addr%:*}" "${addr##*:}")
      if [ -n "$offset" ] && [ "$offset" -gt "$best_offset" ]; then
        best=$addr
        best_offset=$offset
        chosen="offset $offset"
      fi
    done
  fi
  if [ -z "$best" ]; then
    log "warning: crash: Redis exited (${EXIT_CODE:-no exit} ${EXIT_STATUS:-}) as a master and no replica answered; the cluster fails over after the node timeout"
    return 0
  fi
  if [[ $(RCLI_TIMEOUT=2 rcli "${best%:*}" "${best##*:}" cluster failover force 2>/dev/null) == OK* ]]; then
    log "crash: Redis exited (${EXIT_CODE:-no exit} ${EXIT_STATUS:-}) as a master; $best ($chosen) takes over with CLUSTER FAILOVER FORCE ($(elapsed_ms "$started") ms)"
    publish_status stopping "Redis exited (${EXIT_CODE:-no exit} ${EXIT_STATUS:-}); $best takes over its slots"
  else
    log "warning: crash: $best refused CLUSTER FAILOVER FORCE; the cluster fails over after the node timeout"
  fi
}

# failover_watch: redis-node-watch.service (Redis Cluster). Redis elects a replica 500-1000 ms after the
# cluster flags its master FAIL (a delay to let the flag spread and to rank the replicas), on top of the
# node timeout it took to flag it. FAIL already means a majority of the masters lost the master, so the
# replica that would win the election takes over as soon as it sees the flag: CLUSTER NODES every 100 ms
# on one connection, each line judged alone (a line says all of one node's state), and the takeover on a
# second one kept open (CTL).
failover_watch() {
  local master
  # Stopped with the instance (SIGTERM): a normal end, not a failure to publish.
  trap 'exit 0' TERM
  while :; do
    ctl_open
    while read -r master; do
      # Only a node id: nothing else written to this pipe may pass for one.
      [[ $master =~ ^[0-9a-f]{40}$ ]] || continue
      fast_takeover "$master" || log "warning: watch: the fast takeover failed; the cluster's own election follows"
    done < <({ RCLI_TIMEOUT=3600 rcli "$NODE_IP" "$REDIS_PORT" -r -1 -i 0.1 cluster nodes 2>/dev/null || true; } | failed_master_events)
    # This node's Redis stopped (or restarts): wait for it without spawning much, and out of the way of the
    # crash path (ExecStopPost) that runs on this host at the same moment.
    sleep 2
  done
}

# failed_master_events: reads CLUSTER NODES replies, one after another, and prints this replica's master id
# once each time the cluster flags it FAIL ("fail", not the unconfirmed "fail?"); again only after the
# flag was cleared or the master changed.
failed_master_events() {
  awk '
    $3 ~ /myself/ { mine = ($3 ~ /slave/) ? $4 : "" }
    { failed[$1] = ($3 ~ /(^|,)fail(,|$)/) }
    mine == "" || !failed[mine] { said = "" }
    mine != "" && failed[mine] && said != mine { print mine; fflush(); said = mine }'
}

# ctl_open: a redis-cli kept open to this node (coprocess CTL, commands on its stdin) for fast_takeover.
# A command on it costs neither a process nor a TLS handshake: a redis-cli spawned on a busy host took
# 70-190 ms, and the takeover races Redis's own election.
ctl_open() {
  ctl_close
  coproc CTL { RCLI_TIMEOUT=86400 rcli "$NODE_IP" "$REDIS_PORT" 2>/dev/null; }
  CTL_SEQ=0
}

ctl_close() {
  if [ -n "${CTL_PID:-}" ]; then
    kill "$CTL_PID" 2>/dev/null || true
    wait "$CTL_PID" 2>/dev/null || true
  fi
  CTL_PID=""
}

# ctl COMMAND...: each argument one command line on CTL; their replies (CR stripped) land in CTL_LINES,
# up to a marker echoed after them. Fails when CTL is gone or stays silent for 1 s (lines of a reply that
# came too late are skipped by the next call, which reads up to its own marker).
ctl() {
  local marker line
  CTL_LINES=()
  [ -n "${CTL_PID:-}" ] && kill -0 "$CTL_PID" 2>/dev/null || return 1
  CTL_SEQ=$((CTL_SEQ + 1))
  marker="ctl-end-$CTL_SEQ-$BASHPID"
  { printf '%s\n' "$@" "ECHO $marker" 1>&"${CTL[1]}"; } 2>/dev/null || return 1
  while IFS= read -r -t 1 line <&"${CTL[0]}"; do
    line=${line%$'\r'}
    if [ "$line" = "$marker" ]; then return 0; fi
    if [[ $line == ctl-end-* ]]; then CTL_LINES=(); else CTL_LINES+=("$line"); fi
  done
  return 1
}

# fast_takeover MASTER_ID: this replica takes its failed master's slots at once (CLUSTER FAILOVER TAKEOVER:
# no election) when it is the one Redis would elect: its data is fresh enough (Redis's own validity rule:
# cut off for at most cluster-replica-validity-factor x node timeout + 10 s) and no other replica of that
# master has a larger offset (the lower node id wins a tie). When it cannot tell (a sibling does not
# answer), it leaves the failover to Redis's election. It races that election (500-1000 ms after the
# flag), so it runs no process on the way: the state is read on CTL and judged in bash.
fast_takeover() {
  local master=$1 seen=$EPOCHREALTIME line id addr flags of rest me="" mine="" master_flags="" timeout="" want=0
  local myoffset="" down="" limit sibs=() sib sid offset
  if ! ctl "CLUSTER NODES" "INFO replication" "CONFIG GET cluster-node-timeout"; then
    # The connection was lost (Redis restarted, or it timed out): once more on a new one.
    ctl_open
    ctl "CLUSTER NODES" "INFO replication" "CONFIG GET cluster-node-timeout" || return 1
  fi
  for line in "${CTL_LINES[@]}"; do
    case "$line" in
    slave_repl_offset:*) myoffset=${line#*:} ;;
    master_link_down_since_seconds:*) down=${line#*:} ;;
    cluster-node-timeout) want=1 ;;
    *)
      if [ "$want" = 1 ]; then
        timeout=$line want=0
        continue
      fi
      read -r id addr flags of rest <<<"$line"
      [[ ${addr:-} == *@* && -n ${rest:-} ]] || continue
      if [[ $flags == *myself* ]]; then me=$id mine="$flags $of"; fi
      if [ "$id" = "$master" ]; then master_flags=$flags; fi
      if [[ $of == "$master" && $flags == *slave* && $flags != *myself* && $flags != *fail* ]]; then
        sibs+=("$id=${addr%@*}")
      fi
      ;;
    esac
  done
  # Still this replica's master, and still flagged failed ("fail", not the unconfirmed "fail?").
  [[ -n $me && $mine == *slave*" $master" ]] || return 0
  [[ ,$master_flags, == *,fail,* ]] || return 0
  limit=$((${timeout:-15000} * 10 / 1000 + 10))
  if [ -n "$down" ] && [ "$down" -gt "$limit" ]; then
    log "watch: master $master failed, but this replica lost it ${down}s ago (over ${limit}s): leaving it to the cluster's election"
    return 0
  fi
  for sib in "${sibs[@]}"; do
    sid=${sib%%=*} addr=${sib#*=}
    offset=$(RCLI_TIMEOUT=1 replica_offset "${addr%:*}" "${addr##*:}")
    if [ -z "$offset" ]; then
      log "watch: master $master failed; replica $addr does not answer, so the cluster's election picks the replica"
      return 0
    fi
    if [ "$offset" -gt "$myoffset" ] || { [ "$offset" = "$myoffset" ] && [[ "$sid" < "$me" ]]; }; then
      return 0
    fi
  done
  if ctl "CLUSTER FAILOVER TAKEOVER" && [ "${CTL_LINES[0]:-}" = OK ]; then
    log "watch: master $master failed (the cluster's FAIL flag); this replica (offset $myoffset) took its slots over at once, $(elapsed_ms "$seen") ms after seeing the flag (at $((${seen/./} / 1000)) ms since the epoch)"
  else
    log "watch: CLUSTER FAILOVER TAKEOVER refused ($(elapsed_ms "$seen") ms after the flag): ${CTL_LINES[*]:-no reply}"
    return 1
  fi
}
