#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages runbook's lab, tests and demo use (as root). Packages
# already installed are left alone; apt's own mirror configuration is used.
set -euo pipefail
# openssh-*: the lab's sshd and the real client the lab tests use
# ansible-core: ansible-inventory/ansible-playbook, the reference for inventory tests and make bench
# debootstrap, systemd-container: the lab's systemd tier
# iproute2, iptables: namespaces, veth, bridges, routes for the lab
# sudo, opendoas: the transport's and the helper start's become tests (su is in util-linux);
#   bc: make demo's timings
# postgresql: the history store's PostgreSQL backend is tested against a real server that the
#   test starts itself (initdb into a temporary directory, its own port)
# chromium, fonts-dejavu-core: the HTML compliance report is checked in a headless browser
# qemu-system-x86: the lab's vm tier (micro-VMs under TCG with Debian's own kernel, for bonds)
# gcc-12, binutils, xz-utils: the vm tier builds netdevsim (SR-IOV VFs) for that kernel
# e2fsprogs, cpio: the vm tier's systemd userland is an ext4 image of the base tree
# busybox: the helper's start and install scripts are tested with its shell and applets
pkgs=(openssh-server openssh-client ansible-core debootstrap systemd-container iproute2 iptables
  sudo opendoas bc ca-certificates git make postgresql chromium fonts-dejavu-core qemu-system-x86
  gcc-12 binutils xz-utils e2fsprogs cpio busybox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The vm tier downloads Debian's kernel and busybox packages with apt: it needs package lists.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -q >/dev/null
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
