#!/usr/bin/env bash
# Builds the appliance's disk image: Debian (debootstrap) with the appliance installed in
# slot A, the converted speech model, the systemd units, first-boot set-up and a BIOS boot
# loader. Run as root on Debian from the repository:
#
#   firmware/build-image.sh                    # -> build/image/appliance-<version>.img
#   UPDATE_KEY=release.pub firmware/build-image.sh   # boxes trust bundles signed by it
#
# Settings (environment): OUT (build/image), SUITE (bookworm), MIRROR, SIZE (6G),
# UPDATE_KEY (an Ed25519 public key, PEM). The Debian base is cached in OUT/cache, keyed
# by the suite and the package list, so a rebuild only redoes the appliance's part.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${OUT:-$repo/build/image}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
size=${SIZE:-6G}
python=${PYTHON:-$repo/.venv/bin/python}

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and file ownership need it)"
for tool in debootstrap mkfs.ext4 sfdisk grub-mkimage; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap e2fsprogs fdisk grub-pc-bin grub2-common"
done
[ -d /usr/lib/grub/i386-pc ] || die "GRUB's BIOS modules are missing: apt-get install grub-pc-bin"
[ -x "$python" ] || die "no virtualenv at $repo/.venv: run 'make install' first (it also builds the model)"

version=$("$python" -c 'import tomllib; print(tomllib.load(open("'"$repo"'/pyproject.toml", "rb"))["project"]["version"])')
packages=$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ',')
key=$(printf '%s\n%s\n' "$suite" "$packages" | sha256sum | cut -c1-16)
mkdir -p "$out/cache"
base="$out/cache/base-$suite-$key.tar"
root="$out/rootfs"

# 1. The Debian base (cached).
if [ ! -s "$base" ]; then
    log "debootstrap $suite with: $packages"
    rm -rf "$out/base"
    debootstrap --variant=minbase --include="$packages" "$suite" "$out/base" "$mirror"
    tar -C "$out/base" -cf "$base.part" . && mv "$base.part" "$base"
    rm -rf "$out/base"
fi
log "root filesystem from $base"
rm -rf "$root" && mkdir -p "$root"
tar -C "$root" -xf "$base"

# 2. The appliance in slot A, built where it runs (current -> slots/a) so that its
#    virtualenv's paths hold in either slot.
#    Its wheel and every dependency's are fetched here, with this machine's package index
#    settings, and installed in the image offline.
log "appliance $version wheel and its dependencies"
rm -rf "$out/wheels" && "$python" -m pip wheel -q --no-deps -w "$out/wheels" "$repo"
"$python" -m pip download -q --only-binary=:all: -d "$out/wheels" "$out/wheels"/call_appliance-*.whl
# the second opinion on music (analysis/speech_check.py): the wheel's model file only, its
# dependencies would pull torch
"$python" -m pip download -q --no-deps --only-binary=:all: -d "$out/wheels" silero-vad==6.2.3
mkdir -p "$root/opt/appliance/slots/a" "$root/tmp/wheels"
ln -sfn slots/a "$root/opt/appliance/current"
cp "$out/wheels"/*.whl "$root/tmp/wheels/"
mounts=(proc sys dev)
cleanup() { for m in "${mounts[@]}"; do umount -l "$root/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$root" /bin/sh -euc '
    python3 -m venv /opt/appliance/current/venv
    /opt/appliance/current/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /tmp/wheels /tmp/wheels/call_appliance-*.whl
    /opt/appliance/current/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check \
        --no-index --no-deps /tmp/wheels/silero_vad-*.whl
    /opt/appliance/current/venv/bin/appliance --version'
cleanup
trap - EXIT
rm -rf "$root/tmp/wheels"
printf '{"version": "%s", "installed_at": %s}\n' "$version" "$(date +%s)" > "$root/opt/appliance/slots/a/slot.json"
cp "$repo/README.md" "$root/opt/appliance/README.md"

# 3. The speech model, shared by the slots (its folder name is keyed by its inputs).
model=$("$python" -c 'from appliance.asr.model import find_model; print(find_model().path)') \
    || die "no converted model: run '$repo/.venv/bin/appliance models build'"
mkdir -p "$root/opt/appliance/models"
cp -a "$model" "$root/opt/appliance/models/"

# 4. Units, the image's files, and the update check kept outside the slots.
install -m 0644 "$repo"/systemd/*.service "$repo"/systemd/*.path "$repo"/systemd/*.timer "$root/etc/systemd/system/"
install -D -m 0644 "$repo/systemd/appliance.sysusers" "$root/usr/lib/sysusers.d/appliance.conf"
install -D -m 0644 "$repo/systemd/appliance.tmpfiles" "$root/usr/lib/tmpfiles.d/appliance.conf"
install -D -m 0644 "$repo/systemd/journald.conf.d/appliance.conf" "$root/etc/systemd/journald.conf.d/appliance.conf"
cp -a "$here/rootfs/." "$root/"
mkdir -p "$root/usr/lib/appliance/slotcheck"
touch "$root/usr/lib/appliance/slotcheck/__init__.py"
cp "$repo/appliance/system/slots.py" "$repo/appliance/system/atomic.py" "$root/usr/lib/appliance/slotcheck/"
ln -sfn ../sites-available/appliance "$root/etc/nginx/sites-enabled/appliance"
rm -f "$root/etc/nginx/sites-enabled/default"
mkdir -p "$root/etc/appliance/update-keys"
if [ -n "${UPDATE_KEY:-}" ]; then
    install -m 0644 "$UPDATE_KEY" "$root/etc/appliance/update-keys/release.pub"
else
    log "no UPDATE_KEY: this image will refuse every update bundle until a key is added"
fi
systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/appliance.conf"
systemd-tmpfiles --root="$root" --create "$root/usr/lib/tmpfiles.d/appliance.conf"
chroot "$root" chown root:appliance /etc/appliance /etc/appliance/appliance.toml   # the image's groups
chmod 0640 "$root/etc/appliance/appliance.toml"
systemctl --root="$root" enable appliance.service appliance-firstboot.service \
    appliance-update.path appliance-update-check.timer systemd-networkd.service \
    systemd-resolved.service systemd-timesyncd.service nginx.service serial-getty@ttyS0.service
# Debian starts its own mosquitto and kamailio: the appliance runs both itself, on the same ports.
systemctl --root="$root" disable mosquitto.service kamailio.service 2>/dev/null || true
systemctl --root="$root" mask mosquitto.service kamailio.service

# 5. Identity and boot: a fresh machine id, host name and secrets on the first boot; no
#    password logins (the console shows the panel's address and set-up link).
echo "appliance" > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tappliance\n' > "$root/etc/hosts"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
echo "LABEL=appliance-root / ext4 defaults,errors=remount-ro 0 1" > "$root/etc/fstab"
passwd -R "$root" -l root >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
kernel=$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -1)
initrd="initrd.img-${kernel#vmlinuz-}"
[ -s "$root/boot/$initrd" ] || die "no initramfs for $kernel in the root filesystem"
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat > "$root/boot/grub/grub.cfg" <<GRUB
set timeout=2
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "Call recording appliance $version" {
    search --no-floppy --label --set=root appliance-root
    linux /boot/$kernel root=LABEL=appliance-root ro console=tty0 console=ttyS0,115200n8
    initrd /boot/$initrd
}
GRUB

# 6. The disk: an MBR with one bootable ext4 partition from 1 MiB, GRUB in the gap before it.
name="appliance-$version"
log "file system ($size) and disk image"
rm -f "$out/$name.ext4" "$out/$name.img"
mkfs.ext4 -q -L appliance-root -d "$root" "$out/$name.ext4" "$size"
part_bytes=$(stat -c %s "$out/$name.ext4")
truncate -s $((part_bytes + 1024 * 1024)) "$out/$name.img"
echo "2048,,L,*" | sfdisk -q --label dos "$out/$name.img"
dd if="$out/$name.ext4" of="$out/$name.img" bs=1M seek=1 conv=notrunc,sparse status=none
grub-mkimage -O i386-pc -o "$out/core.img" -p "(hd0,msdos1)/boot/grub" \
    biosdisk part_msdos ext2 search search_label normal linux echo configfile serial terminal
core_bytes=$(stat -c %s "$out/core.img")
[ "$core_bytes" -lt $((2047 * 512)) ] || die "GRUB core image does not fit before the partition"
# boot.img's code (not the partition table) into the MBR; core.img from sector 1, where
# boot.img and core.img's own block list look for it by default
dd if=/usr/lib/grub/i386-pc/boot.img of="$out/$name.img" bs=440 count=1 conv=notrunc status=none
dd if="$out/core.img" of="$out/$name.img" bs=512 seek=1 conv=notrunc status=none
rm -f "$out/$name.ext4" "$out/core.img"
sha256sum "$out/$name.img" | sed "s|$out/||" > "$out/$name.img.sha256"
log "done: $out/$name.img ($(du -h --apparent-size "$out/$name.img" | cut -f1), $(du -h "$out/$name.img" | cut -f1) used)"
