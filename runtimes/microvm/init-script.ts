/**
 * The guest's /init (busybox sh, PID 1). It loads the virtio modules, finds the disks Tenement attached (by
 * label, or the spec disk by its magic first line, since virtio-mmio enumeration order is not guaranteed),
 * mounts the host tools (node and its libraries), the app and the instance's data at their host paths, brings
 * up the network, then runs the service command as the tenant's uid with no capabilities. It reports on the
 * serial console with `TENEMENT:` lines the host reads (listening, exited), forwards a `stop` written to the
 * control port (ttyS1) to the app as SIGTERM, and powers the VM off when the app ends: QEMU exits with it.
 */

import { createHash } from 'node:crypto';

/** Load order matters: the Debian cloud kernel ships no modules.dep, and `virtio` needs `virtio_ring` first. */
export const GUEST_MODULES = ['virtio_ring', 'virtio', 'virtio_mmio', 'failover', 'net_failover', 'virtio_net', 'virtio_blk'] as const;

export const MARKER = {
  listening: 'TENEMENT:listening',
  exited: 'TENEMENT:exited',
  failed: 'TENEMENT:failed',
} as const;

export const SPEC_MAGIC = '#TENEMENT-SPEC';

export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
chmod 0755 /
fail() { echo "${MARKER.failed} $*"; sync; poweroff -f; sleep 5; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /tmp /run /etc /tnm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
for m in ${GUEST_MODULES.join(' ')}; do insmod /modules/$m.ko || fail "insmod $m"; done

# Disks show up asynchronously after virtio_blk loads.
spec=
for i in $(seq 100); do
  for d in /dev/vd?; do
    [ -b "$d" ] && [ "$(head -c ${SPEC_MAGIC.length} "$d" 2>/dev/null)" = "${SPEC_MAGIC}" ] && spec=$d
  done
  [ -n "$spec" ] && findfs LABEL=tnm-tools >/dev/null 2>&1 && break
  sleep 0.05
done
[ -n "$spec" ] || fail "no spec disk"
tr -d '\\000' < "$spec" > /run/spec.sh
. /run/spec.sh

mount -o ro "$(findfs LABEL=tnm-tools)" /tnm || fail "cannot mount the tools image"
# The tools image mirrors host paths (usr/, lib -> usr/lib, lib64, ...): link its top-level entries into /.
for e in /tnm/*; do [ -e "/\${e#/tnm/}" ] || [ -L "/\${e#/tnm/}" ] || ln -s "$e" "/\${e#/tnm/}"; done
echo "tenant:x:$TNM_UID:$TNM_GID::$TNM_DATA:/bin/sh" > /etc/passwd
echo "root:x:0:0::/:/bin/sh" >> /etc/passwd
echo "tenant:x:$TNM_GID:" > /etc/group
hostname "$TNM_HOSTNAME"

# Makes the folder $1. A folder on its way that is a link into the read-only tools image (say /opt, because the
# node binary is under /opt/node) becomes a real folder of links to the same entries, so /opt/app can be made.
make_path() {
  p=
  saved_ifs=$IFS
  IFS=/
  for part in $1; do
    [ -n "$part" ] || continue
    p="$p/$part"
    link=$(readlink "$p" 2>/dev/null) || link=
    case "$link" in
      /tnm/*)
        rm "$p" && mkdir "$p" || return 1
        for e in "$link"/* "$link"/.[!.]*; do
          if [ -e "$e" ] || [ -L "$e" ]; then ln -s "$e" "$p/\${e##*/}"; fi
        done
        ;;
    esac
  done
  IFS=$saved_ifs
  mkdir -p "$1"
}
make_path "$TNM_CWD" && make_path "$TNM_DATA" || fail "cannot create $TNM_CWD or $TNM_DATA"
mount -o ro "$(findfs LABEL=tnm-app)" "$TNM_CWD" || fail "cannot mount the app image at $TNM_CWD"
mount -o rw,noatime "$(findfs LABEL=tnm-data)" "$TNM_DATA" || fail "cannot mount the data image at $TNM_DATA"
# A data image written under another uid (the instance's uid changed: one uid per instance since issue 18) is
# handed over whole; links are changed themselves, never followed.
[ "$(stat -c %u "$TNM_DATA")" = "$TNM_UID" ] || chown -R -h "$TNM_UID:$TNM_GID" "$TNM_DATA"
chown "$TNM_UID:$TNM_GID" "$TNM_DATA"

ip link set lo up
ip link set eth0 up || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
[ "$TNM_NET" = host ] && echo "nameserver 10.0.2.3" > /etc/resolv.conf

stty -F /dev/ttyS1 raw -echo 2>/dev/null
cd "$TNM_CWD"
"$TNM_SETPRIV" --reuid="$TNM_UID" --regid="$TNM_GID" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@" </dev/null >/dev/console 2>&1 &
app=$!
( while read -r cmd; do [ "$cmd" = stop ] && kill -TERM $app; done ) </dev/ttyS1 &
hex=$(printf '%04X' "$TNM_PORT")
while kill -0 $app 2>/dev/null; do
  if grep -q ":$hex [0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
    echo "${MARKER.listening} $TNM_PORT uptime=$(cut -d' ' -f1 /proc/uptime)"
    break
  fi
  sleep 0.05
done
wait $app
code=$?
echo "${MARKER.exited} $code"
sync
umount "$TNM_DATA" 2>/dev/null || mount -o remount,ro "$TNM_DATA"
poweroff -f
`;

/** Which /init a prepared guest carries (guest.json's initKey), so an outdated initramfs is found before a boot. */
export const INIT_KEY = createHash('sha256').update(INIT_SCRIPT).digest('hex').slice(0, 16);
