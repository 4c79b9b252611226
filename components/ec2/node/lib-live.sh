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
