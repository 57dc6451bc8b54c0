# shellcheck shell=bash
# Shared pieces of the benchmark scripts (scale, checks): the nginx that
# serves N real servers on consecutive ports, the keepalived.conf that
# checks them, and small /proc readers. Sourced, not run.

# Build lvsprobe as `make build` does: without cgo, so the daemon can drop
# its capabilities after start-up (internal/caps) as it does in production.
export CGO_ENABLED=${CGO_ENABLED:-0}

# bench_payload DIR: writes DIR/html/payload.bin (16 KiB of random bytes)
# and prints its MD5, the `digest` HTTP_GET compares against.
bench_payload() {
	mkdir -p "$1/html"
	head -c 16384 /dev/urandom >"$1/html/payload.bin"
	md5sum "$1/html/payload.bin" | cut -d' ' -f1
}

# bench_nginx_conf DIR ADDR FIRST COUNT [STATUS]: writes DIR/nginx.conf, one
# foreground nginx process (no master) serving DIR/html on ADDR ports
# FIRST..FIRST+COUNT-1, with no access log. With STATUS (ADDR:PORT) it also
# serves stub_status there at /status, to count accepted connections.
bench_nginx_conf() {
	local dir=$1 addr=$2 first=$3 count=$4 status=${5:-} i t
	mkdir -p "$dir/html" "$dir/logs" "$dir/tmp"
	{
		echo "daemon off; master_process off; worker_processes 1;"
		echo "worker_rlimit_nofile $((2 * count + 4096)); pid $dir/nginx.pid; error_log $dir/logs/error.log crit;"
		echo "events { worker_connections $((count + 4096)); multi_accept on; }"
		echo "http { access_log off; default_type application/octet-stream;"
		for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/tmp/$t;"; done
		[[ -z $status ]] || echo "  server { listen $status; location = /status { stub_status; } }"
		echo "  server { root $dir/html;"
		for ((i = 0; i < count; i++)); do echo "    listen $addr:$((first + i));"; done
		echo "  }"
		echo "}"
	} >"$dir/nginx.conf"
}

# bench_nginx DIR: starts the nginx of DIR/nginx.conf in the background (in
# the caller's network namespace); its pid is in $!.
bench_nginx() {
	/usr/sbin/nginx -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log" &
}

# bench_keepalived_conf KIND ADDR FIRST COUNT DIGEST: prints a keepalived.conf
# with COUNT real servers ADDR:FIRST.., 1,000 per virtual server
# 198.18.250.K:80 (K = 1, 2, …), NAT, delay_loop 1, each checked by
# TCP_CHECK (KIND tcp) or HTTP_GET of /payload.bin with DIGEST (KIND http).
bench_keepalived_conf() {
	local kind=$1 addr=$2 first=$3 count=$4 digest=$5 check i
	if [[ $kind == tcp ]]; then
		check=$'    TCP_CHECK {\n      connect_timeout 3\n    }'
	else
		check=$'    HTTP_GET {\n      url {\n        path /payload.bin\n        digest '"$digest"$'\n      }\n      connect_timeout 3\n    }'
	fi
	for ((i = 0; i < count; i++)); do
		if ((i % 1000 == 0)); then
			((i > 0)) && echo "}"
			printf 'virtual_server 198.18.250.%d 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n' $((i / 1000 + 1))
		fi
		printf '  real_server %s %d {\n    weight 1\n%s\n  }\n' "$addr" $((first + i)) "$check"
	done
	echo "}"
}

# bench_vip INDEX: the virtual server (VIP:PORT) of the INDEXth real server
# in bench_keepalived_conf's numbering (from 0).
bench_vip() { echo "198.18.250.$(($1 / 1000 + 1)):80"; }

# bench_wait_port ADDR PORT PID: waits (≤ 30 s) until ADDR:PORT accepts a
# connection; fails if process PID exits first. nginx binds every port
# before it accepts on any, so waiting for the last one is enough.
bench_wait_port() {
	local t
	for ((t = 0; t < 300; t++)); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { echo "bench: pid $3 exited before $1:$2 listened" >&2; return 1; }
		sleep 0.1
	done
	echo "bench: $1:$2 not listening after 30 s" >&2
	return 1
}

# bench_ticks PID...: the utime+stime clock ticks of the processes (those
# that have exited count 0).
bench_ticks() {
	local p s=0 v
	for p in "$@"; do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=0
		s=$((s + v))
	done
	echo "$s"
}

# bench_runwait_ns PID: nanoseconds the threads of process PID (those alive
# now) have spent runnable but waiting for a CPU (the second field of
# /proc/PID/task/*/schedstat): time a process is late because it is not
# given a CPU, not because of what it does.
bench_runwait_ns() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f\n", s }'
}

# bench_hwm_kib PID...: the sum of the processes' peak RSS (VmHWM), KiB.
bench_hwm_kib() {
	local p s=0 v
	for p in "$@"; do
		v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
		s=$((s + ${v:-0}))
	done
	echo "$s"
}

# bench_timewait: TIME_WAIT sockets in the caller's network namespace.
bench_timewait() {
	awk '$1 == "TCP:" { for (i = 2; i < NF; i += 2) if ($i == "tw") print $(i + 1) }' /proc/net/sockstat
}

# bench_snmp GROUP FIELD: a counter of /proc/net/snmp or /proc/net/netstat
# (e.g. Tcp ActiveOpens, TcpExt ListenDrops) in the caller's namespace.
bench_snmp() {
	cat /proc/net/snmp /proc/net/netstat | awk -v g="$1:" -v f="$2" '
		$1 == g && !h { for (i = 2; i <= NF; i++) k[i] = $i; h = 1; next }
		$1 == g && h { for (i = 2; i <= NF; i++) if (k[i] == f) print $i; exit }'
}

# bench_napi_threaded DEV: gives the veth DEV (in the caller's network
# namespace, whose sysfs must be mounted on /sys) its own NAPI instance
# (GRO on) served by a kernel thread "napi/DEV-ID". Without it a veth
# transmit runs the peer namespace's whole receive path (a real server's
# TCP stack answering a SYN, nginx's wakeup…) synchronously in the sending
# process's context, and that CPU is charged to the prober; with it the
# sender only queues the packet and the peer's work shows up in the peer's
# NAPI thread, as on a real director, where the real servers are other
# machines. Apply it to both ends. TSO goes off: veth hands a packet sent
# by a TSO-capable device to NAPI only when GRO could merge it
# (veth_skb_is_eligible_for_gro), which a SYN never is.
# The thread gets real-time priority (SCHED_FIFO 50), the precedence
# softirq has over processes: at normal priority it waits behind the
# machine's load and the veth's 256-packet ring overflows.
bench_napi_threaded() {
	local p
	ethtool -K "$1" gro on tso off >/dev/null
	echo 1 >"/sys/class/net/$1/threaded"
	[[ $(cat "/sys/class/net/$1/threaded") == 1 ]] || { echo "bench: threaded NAPI not enabled on $1" >&2; return 1; }
	for p in $(ps -eo pid=,comm= | awk -v x="napi/$1-" 'index($2, x) == 1 { print $1 }'); do
		chrt -f -p 50 "$p"
	done
}

# bench_kthread_ticks PREFIX: the utime+stime clock ticks of the kernel
# threads whose name starts with PREFIX (e.g. "napi/sd123-"), summed.
bench_kthread_ticks() {
	local p
	p=$(ps -eo pid=,comm= | awk -v x="$1" 'index($2, x) == 1 { print $1 }')
	# shellcheck disable=SC2086 # one pid per word
	bench_ticks $p
}

# bench_machine_ticks: busy clock ticks of the whole machine so far (every
# CPU, every process and interrupt: /proc/stat's cpu line minus idle and
# iowait). Other users of the machine are in it.
bench_machine_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
