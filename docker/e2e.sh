#!/usr/bin/env bash
# End-to-end check of the container images and compose.yaml: builds the images
# (offline path: local base image, host-built binaries), brings the stack up,
# signs with the real client calls against the gateway on port 9999 and checks
# the outputs with independent tools, stops a service to see its domain fail
# cleanly and recover, then tears everything down. Prints a PASS/FAIL line per
# check and a closing "N passed, M failed".
# Usage: docker/e2e.sh      (as root or a docker user; needs curl, cc, tar,
#                            openssl, modinfo, the kernel's sign-file,
#                            mender-artifact, od, and srktool and csf_parser
#                            from imx-code-signing-tool)
set -uo pipefail
cd "$(dirname "$0")/.."

SIGN_FILE=/usr/lib/linux-kbuild-6.1/scripts/sign-file
export COMPOSE_PROJECT_NAME=digsig-e2e
export DIGSIG_PORT=${DIGSIG_PORT:-9999}
GW=http://127.0.0.1:$DIGSIG_PORT
passed=0 failed=0
check() { # check NAME COMMAND...: runs COMMAND, prints PASS/FAIL
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    echo "PASS  $name"; passed=$((passed + 1))
  else
    echo "FAIL  $name"; printf '      %s\n' "${out//$'\n'/$'\n'      }" | tail -15; failed=$((failed + 1))
  fi
}
finish() {
  docker/compose down -v --remove-orphans >/dev/null 2>&1
  rm -rf "$work"
  echo "e2e: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

work=$(mktemp -d /tmp/digsig-e2e.XXXXXX)
trap 'finish; exit $?' EXIT

echo "== building images"
docker/build-prebuilt.sh || { echo "FAIL  images build"; failed=$((failed + 1)); exit 1; }
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^digsig/' | sed 's/^/      image /'

# Keys for machine "e2e", readable by the services' user (uid 10001) only.
keys=$work/keys/e2e/kmodsign
mkdir -p "$keys"
openssl req -new -x509 -nodes -days 2 -newkey rsa:2048 -subj "/CN=digsig e2e" \
  -keyout "$keys/kernel-signkey.priv" -out "$keys/kernel-signkey.x509" 2>/dev/null
swu=$work/keys/e2e/swupdate
mkdir -p "$swu"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$swu/rsa-private.key" 2>/dev/null
openssl req -new -x509 -nodes -days 2 -newkey rsa:2048 -subj "/CN=digsig e2e cms" \
  -keyout "$swu/cms-private.key" -out "$swu/cms.cert" 2>/dev/null
printf 'software = { version = "1.0.0"; };\n' > "$work/sw-description"
openssl dgst -sha256 -sign "$swu/rsa-private.key" -out "$work/reference.sig" "$work/sw-description"
cp "$swu/cms.cert" "$work/cms.cert"
mdr=$work/keys/e2e/mender
mkdir -p "$mdr"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$mdr/private.key" 2>/dev/null
openssl pkey -in "$mdr/private.key" -pubout -out "$work/mender-public.key"
otk=$work/keys/e2e/opteesign
mkdir -p "$otk"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$otk/optee-signing-key.pem" 2>/dev/null
openssl pkey -in "$otk/optee-signing-key.pem" -pubout -out "$work/optee-public.pem"
cp "$otk/optee-signing-key.pem" "$work/optee-private.pem"
# A HAB4 PKI (openssl and srktool) as i.MX keys, a boot image and its CSF.
svc-imx/tests/fixtures/make-hab4-pki "$work/pki" >/dev/null
mkdir -p "$work/keys/e2e/imxsign"
tar -C "$work/pki" -czf "$work/keys/e2e/imxsign/imx-cst-keys.tar.gz" SRK_1_2_3_4_table.bin crts keys
head -c 32768 /dev/urandom > "$work/imx-boot.bin"
cat > "$work/imx-boot.csf" <<'CSF'
[Header]
    Version = 4.2
    Hash Algorithm = sha256
    Engine = CAAM
    Engine Configuration = 0
    Certificate Format = X509
    Signature Format = CMS
[Install SRK]
    File = "SRK_1_2_3_4_table.bin"
    Source index = 0
[Install CSFK]
    File = "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem"
[Authenticate CSF]
[Install Key]
    Verification index = 0
    Target Index = 2
    File = "crts/IMG1_1_sha256_2048_65537_v3_usr_crt.pem"
[Authenticate Data]
    Verification index = 2
    Blocks = 0x877ff400 0x0 0x8000 "imx-boot.bin"
CSF
if [ "$(id -u)" -eq 0 ]; then chown -R 10001:10001 "$work/keys"; chmod -R go-rwx "$work/keys"; else chmod -R a+rX "$work/keys"; fi
export DIGSIG_KEYS_DIR=$work/keys
export DIGSIG_ACCESS_DIR=$work/access; mkdir -p "$DIGSIG_ACCESS_DIR"
# Mender artifacts are signed where they are: a directory mounted at the same
# path in svc-update, writable by its user.
export DIGSIG_ARTIFACTS_DIR=$work/deploy
mkdir -p "$DIGSIG_ARTIFACTS_DIR"
printf 'e2e payload\n' > "$work/payload"
mender-artifact write module-image -T script -n e2e-1 -t board -f "$work/payload" -o "$DIGSIG_ARTIFACTS_DIR/image.mender" >/dev/null
if [ "$(id -u)" -eq 0 ]; then chown -R 10001:10001 "$DIGSIG_ARTIFACTS_DIR"; else chmod -R a+rwX "$DIGSIG_ARTIFACTS_DIR"; fi

# A module tree as a kernel package has it.
pkgd=$work/pkgd; mod=$pkgd/lib/modules/6.1.0-e2e/kernel/e2e.ko
mkdir -p "$(dirname "$mod")"
printf 'static const char l[] __attribute__((used, section(".modinfo"), aligned(1))) = "license=GPL";\nint init_module(void) { return 0; }\n' > "$work/m.c"
cc -c -o "$mod" "$work/m.c"
ln -s /usr/src/kernel "$pkgd/lib/modules/6.1.0-e2e/build"
cp "$mod" "$work/reference.ko"
"$SIGN_FILE" sha512 "$keys/kernel-signkey.priv" "$keys/kernel-signkey.x509" "$work/reference.ko"
tar -C "$pkgd" -c -z -f "$work/modules-in.tar.gz" lib/modules

# A TA tree as an OP-TEE build leaves it, packed as upstream's docs' client does.
ta_uuid=8aaaf200-2450-11e4-abe2-0002a5d5c51b
mkdir -p "$work/optee/ta/hello/out"
head -c 200000 /dev/urandom > "$work/optee/ta/hello/out/$ta_uuid.stripped.elf"
printf '0x10\n' > "$work/optee/ta/hello/out/$ta_uuid.ta-version"
( cd "$work/optee" && find ta -type f | sort | xargs tar -c -z -f ../tasign-in.tar.gz )

# A stand-in L4T BSP (NVIDIA's cannot be had here; its helpers honour the real
# command lines and sign with openssl), a PKC key, and a flash package as
# meta-tegra lays it out, tarred as tegrasign.bbclass tars it.
export DIGSIG_L4T_DIR=$work/nvidia
svc-tegra/tests/fixtures/make-stand-in-bsp "$DIGSIG_L4T_DIR" 35.5.0 tegra234 /work/stand-in-records >/dev/null
chmod -R a+rX "$DIGSIG_L4T_DIR"
tgk=$work/keys/e2e/tegrasign
mkdir -p "$tgk"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tgk/rsa_priv.pem" 2>/dev/null
openssl pkey -in "$tgk/rsa_priv.pem" -pubout -out "$work/tegra-public.pem"
if [ "$(id -u)" -eq 0 ]; then chown -R 10001:10001 "$tgk"; chmod -R go-rwx "$tgk"; else chmod -R a+rX "$tgk"; fi
tgp=$work/tegraflash; mkdir -p "$tgp"
printf '<partition_layout version="01.00.0000"><partition name="kernel" type="kernel"><filename> LNXFILE </filename></partition></partition_layout>\n' > "$tgp/flash.xml.in"
head -c 40000 /dev/urandom > "$tgp/board.dtb"; head -c 300000 /dev/urandom > "$tgp/boot.img"
printf '# sdram\n' > "$tgp/e2e.cfg"; printf '#!/bin/sh\n' > "$tgp/doflash.sh"; chmod +x "$tgp/doflash.sh"
printf 'FLASHVARS="CHIP_SKU"\nCHIP_SKU="00:00:00:D0"\n' > "$tgp/flashvars"
printf 'DTBFILE=board.dtb\nODMDATA=gbe-uphy-config-8\nLNXFILE=boot.img\nBOARDID=3701\nFAB=300\nfuselevel=fuselevel_production\nlocalbootfile=boot.img\nboardcfg=\nCHIPREV=\nBOARDSKU=0004\nBOARDREV=\n' > "$tgp/MANIFEST"
( cd "$tgp" && tar -c -h -z -f "$work/tegrasign-in.tar.gz" * )

echo "== starting the stack"
docker/compose up -d >/dev/null 2>"$work/up.log" || { cat "$work/up.log"; echo "FAIL  compose up"; failed=$((failed + 1)); exit 1; }
wait_ready() { for _ in $(seq 1 120); do curl -sf "$GW/ready" >/dev/null && return 0; sleep 0.5; done; curl -s "$GW/ready"; return 1; }
check "gateway ready on :$DIGSIG_PORT with svc-kmod, svc-optee, svc-update, svc-imx and svc-tegra routed" wait_ready

sign_modules() { # the kernel-module-signing.bbclass calls, then the checks
  local out=$work/out-$1; rm -rf "$out"; mkdir -p "$out"
  ( cd "$work" && curl --silent --fail -X POST -F "machine=e2e" -F "hashalg=sha512" \
      -F "artifact=@modules-in.tar.gz" --output "out-$1.tar.gz" "$GW/sign/modules" ) || return 1
  tar -C "$out" -x --no-same-owner -f "$work/out-$1.tar.gz" ./lib/modules || return 1
  local signed=$out/lib/modules/6.1.0-e2e/kernel/e2e.ko
  cmp "$signed" "$work/reference.ko" || { echo "differs from sign-file's output"; return 1; }
  [ "$(modinfo -F signer "$signed")" = "digsig e2e" ] || { modinfo "$signed"; return 1; }
  [ "$(readlink "$out/lib/modules/6.1.0-e2e/build")" = /usr/src/kernel ]
}
check "sign modules through the gateway (bbclass calls; byte-identical to sign-file; modinfo signer)" sign_modules first

sign_swupdate() { # the swupdate class's calls, checked with openssl
  ( cd "$work" && curl --silent --fail -X POST -F "distro=e2e" -F "method=RSA" \
      -F "sw-description=@sw-description" --output rsa.sig "$GW/sign/swupdate" ) || return 1
  cmp "$work/rsa.sig" "$work/reference.sig" || { echo "differs from openssl dgst -sha256 -sign"; return 1; }
  ( cd "$work" && curl --silent --fail -X POST -F "distro=e2e" -F "method=CMS" \
      -F "sw-description=@sw-description" --output cms.sig "$GW/sign/swupdate" ) || return 1
  openssl cms -verify -binary -inform DER -in "$work/cms.sig" -content "$work/sw-description" \
    -CAfile "$work/cms.cert" -purpose any -out /dev/null
}
check "sign sw-description through the gateway (RSA byte-identical to openssl dgst; CMS verifies with openssl cms)" sign_swupdate

sign_mender() { # mendersign.bbclass's call for a server on the build host, checked with mender-artifact
  local body
  body=$(curl --silent --fail -X POST -F "distro=e2e" -F "artifact-uri=file://$DIGSIG_ARTIFACTS_DIR/image.mender" "$GW/sign/mender") || return 1
  [ "$body" = "Signing successful" ] || { echo "reply: $body"; return 1; }
  mender-artifact validate -k "$work/mender-public.key" "$DIGSIG_ARTIFACTS_DIR/image.mender" || return 1
  [ -z "$(ls -A "$DIGSIG_ARTIFACTS_DIR" | grep -v '^image.mender$')" ] || { ls -la "$DIGSIG_ARTIFACTS_DIR"; return 1; }
  # Outside the allowed directory: refused, naming the rule.
  body=$(curl -s -w ' %{http_code}' -X POST -F distro=e2e -F artifact-uri=file:///etc/passwd "$GW/sign/mender")
  echo "$body"; [[ $body == *DIGSIGSERVER_MENDER_ALLOWED_URIS*" 403" ]]
}
check "sign a Mender artifact in place through the gateway (mender-artifact validate; /etc/passwd refused 403)" sign_mender

sign_optee() { # upstream's documented OP-TEE client call; the TA checked with openssl
  local algo=$1 out=$work/ta-$1
  rm -rf "$out"; mkdir -p "$out"
  ( cd "$work" && curl --silent --show-error --fail -X POST -F "machine=e2e" -F "algo=$algo" \
      -F "artifact=@tasign-in.tar.gz" --output "tasign-out-$algo.tar.gz" "$GW/sign/optee" ) || return 1
  tar -C "$out" -x -f "$work/tasign-out-$algo.tar.gz" || return 1
  local ta=$out/ta/hello/out/$ta_uuid.ta img=$work/optee/ta/hello/out/$ta_uuid.stripped.elf
  [ ! -e "$out/ta/hello/out/$ta_uuid.stripped.elf" ] || { echo "image not replaced"; return 1; }
  head -c 20 "$ta" > "$out/hdr"; tail -c +21 "$ta" | head -c 32 > "$out/digest"
  tail -c +53 "$ta" | head -c 256 > "$out/sig"; tail -c +309 "$ta" > "$out/rest"
  # magic, bootstrap TA, image size, hash 32, sig 256 (algo checked by the verify below)
  [ "$(od -An -tx4 -N12 "$out/hdr" | tr -s ' ')" = " 4f545348 00000001 $(printf %08x 200000)" ] || { od -An -tx4 "$out/hdr"; return 1; }
  cmp <(tail -c +21 "$out/rest") "$img" || { echo "image bytes differ"; return 1; }
  [ "$(head -c 16 "$out/rest" | od -An -tx1 | tr -d ' \n')" = "${ta_uuid//-/}" ] || { echo "uuid bytes differ"; return 1; }
  [ "$(tail -c +17 "$out/rest" | head -c 4 | od -An -tu4 | tr -d ' ')" = 16 ] || { echo "version is not 0x10"; return 1; }
  cmp <(cat "$out/hdr" <(head -c 20 "$out/rest") "$img" | openssl dgst -sha256 -binary) "$out/digest" || { echo "digest differs"; return 1; }
  if [ "$algo" = TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256 ]; then
    openssl pkeyutl -verify -pubin -inkey "$work/optee-public.pem" -in "$out/digest" -sigfile "$out/sig" \
      -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt rsa_mgf1_md:sha256
  else
    cmp "$out/sig" <(openssl pkeyutl -sign -inkey "$work/optee-private.pem" -in "$out/digest" -pkeyopt digest:sha256) \
      || { echo "differs from openssl pkeyutl -sign"; return 1; }
  fi
}
check "sign OP-TEE TAs through the gateway, PSS (digest by openssl dgst; openssl pkeyutl -verify)" sign_optee TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256
check "sign OP-TEE TAs through the gateway, PKCS#1 v1.5 (byte-identical to openssl pkeyutl -sign)" sign_optee TEE_ALG_RSASSA_PKCS1_V1_5_SHA256

sign_imx() { # upstream's README call; the blob checked with csf_parser and openssl cms
  local out=$work/imx; rm -rf "$out"; mkdir -p "$out"
  ( cd "$work" && curl --silent --show-error --fail -X POST -F machine=e2e -F soctype=mx8m \
      -F cstversion=3.3.1 -F "csf=@imx-boot.csf;type=text/plain" -F "artifact=@imx-boot.bin" \
      --output imx/csf.bin "$GW/sign/imx" ) || return 1
  ( cd "$out" && csf_parser -c csf.bin >/dev/null ) || return 1
  cmp "$out/output/SRKTable.bin" "$work/pki/SRK_1_2_3_4_table.bin" || return 1
  openssl x509 -inform DER -in "$out/output/cert1.der" | cmp - "$work/pki/crts/IMG1_1_sha256_2048_65537_v3_usr_crt.pem" || return 1
  head -c "$(( 0x$(od -An -tx1 -j1 -N2 "$out/csf.bin" | tr -d ' \n') ))" "$out/csf.bin" > "$out/commands"
  openssl cms -verify -inform DER -binary -noverify -in "$out/output/sig0.bin" -content "$out/commands" \
    -certfile "$work/pki/crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem" -out /dev/null || return 1
  openssl cms -verify -inform DER -binary -noverify -in "$out/output/sig1.bin" -content "$work/imx-boot.bin" \
    -certfile "$work/pki/crts/IMG1_1_sha256_2048_65537_v3_usr_crt.pem" -out /dev/null
}
check "sign an i.MX CSF through the gateway (csf_parser parses it; SRK table and certs are the PKI's; openssl cms verifies both signatures)" sign_imx

sign_tegra() { # tegrasign.bbclass's calls and post-processing, against the stand-in BSP
  local out=$work/tegra-out; rm -rf "$out"; cp -r "$tgp" "$out"
  ( cd "$work" && curl --silent --show-error --fail -X POST -F machine=e2e -F soctype=tegra234 \
      -F bspversion=35.5.0 -F "artifact=@tegrasign-in.tar.gz" --output tegrasign-out.tar.gz "$GW/sign/tegra" ) || return 1
  local names; names=$(tar -tzf "$work/tegrasign-out.tar.gz" | LC_ALL=C sort | tr '\n' ' ')
  [ "$names" = "./ ./board_sigheader.dtb.encrypt ./boot_sigheader.img.signed ./flash.idx ./flashcmd.txt " ] || { echo "reply holds: $names"; return 1; }
  ( cd "$out" && tar -x -z -f "$work/tegrasign-out.tar.gz" && rm doflash.sh && mv flashcmd.txt doflash.sh && chmod +x doflash.sh ) || return 1
  head -c 300000 "$out/boot_sigheader.img.signed" | cmp - "$tgp/boot.img" || return 1
  tail -c 256 "$out/boot_sigheader.img.signed" > "$work/tegra.sig"
  openssl dgst -sha256 -verify "$work/tegra-public.pem" -signature "$work/tegra.sig" "$tgp/boot.img"
}
check "sign a Jetson flash package through the gateway (stand-in BSP; bbclass post-processing; openssl verifies the signed kernel)" sign_tegra
refuse_tegra_injection() {
  local d=$work/tegra-bad; rm -rf "$d"; cp -r "$tgp" "$d"; echo 'BASH_ENV=./x.sh' >> "$d/MANIFEST"
  ( cd "$d" && tar -c -z -f ../tegra-bad.tar.gz * )
  local body; body=$(cd "$work" && curl -s -w ' %{http_code}' -X POST -F machine=e2e -F soctype=tegra234 \
      -F bspversion=35.5.0 -F "artifact=@tegra-bad.tar.gz" "$GW/sign/tegra")
  echo "$body"; [[ $body == *BASH_ENV*" 400" ]]
}
check "a MANIFEST setting BASH_ENV is refused with 400 naming it" refuse_tegra_injection

openapi_lists_modules() { # (to a file first: grep -q closing the pipe early fails curl under pipefail)
  curl -sf -o "$work/openapi.json" "$GW/openapi.json" && grep -q '"/sign/tegra"' "$work/openapi.json" \
    && grep -q '"/sign/modules"' "$work/openapi.json" && curl -sf -o /dev/null "$GW/docs"
}
check "OpenAPI document and Swagger UI served" openapi_lists_modules
metrics_count_signing() { curl -sf "$GW/metrics" > "$work/metrics.txt" && grep -q '^digsig_requests_total{endpoint="/sign/modules",status="200"}' "$work/metrics.txt"; }
check "GET /metrics counts the signing requests" metrics_count_signing
not_published() {
  local s bindings
  for s in svc-kmod svc-optee svc-update svc-imx svc-tegra; do
    bindings=$(docker inspect -f '{{json .HostConfig.PortBindings}}' "$(docker/compose ps -q $s)")
    echo "$s port bindings: $bindings"; [ "$bindings" = "{}" ] || [ "$bindings" = "null" ] || return 1
  done
}
check "the services are not published on the host" not_published
non_root() {
  for s in gateway svc-kmod svc-optee svc-update svc-imx svc-tegra; do
    [ "$(docker inspect -f '{{.Config.User}}' "$(docker/compose ps -q $s)")" = digsig ] || { echo "$s runs as root"; return 1; }
  done
}
check "containers run as the unprivileged user" non_root
healthy() { # the first check runs a few seconds after start
  local state
  for _ in $(seq 1 40); do
    state=$(docker inspect -f '{{.State.Health.Status}}' "$(docker/compose ps -q "$1")")
    [ "$state" = healthy ] && return 0
    sleep 0.5
  done
  echo "$1 is $state"; return 1
}
check "HEALTHCHECKs report healthy" bash -c "$(declare -f healthy); healthy gateway && healthy svc-kmod && healthy svc-optee && healthy svc-update && healthy svc-imx && healthy svc-tegra"

echo "== stopping svc-kmod"
docker/compose stop svc-kmod >/dev/null 2>&1
fast_503() {
  local start end code
  start=$(date +%s%N)
  code=$(cd "$work" && curl -s -o body -w '%{http_code}' -X POST -F machine=e2e -F artifact=@modules-in.tar.gz "$GW/sign/modules")
  end=$(date +%s%N)
  echo "status $code after $(( (end - start) / 1000000 )) ms: $(cat "$work/body")"
  [ "$code" = 503 ] && grep -q "kmod service" "$work/body" && [ $(( (end - start) / 1000000 )) -lt 3000 ]
}
check "kernel modules: 503 naming the domain within 3 s while svc-kmod is down" fast_503
ready_names_kmod() { local b; b=$(curl -s -w ' %{http_code}' "$GW/ready"); echo "$b"; [[ $b == *"service kmod"* && $b == *" 503" ]]; }
check "/ready is 503 naming service kmod" ready_names_kmod
others_still_answer() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/health")" = 200 ] &&
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -F machine=x "$GW/sign/fitimage")" = 501 ]
}
check "the gateway and its other domains keep answering (health 200; unbuilt endpoints 501)" others_still_answer
check "update packages keep being signed while svc-kmod is down" sign_swupdate

echo "== starting svc-kmod again"
docker/compose start svc-kmod >/dev/null 2>&1
check "svc-kmod recovers without restarting the gateway" wait_ready
check "sign modules through the gateway after recovery" sign_modules again

echo "== access control: tokens at the gateway, the internal token behind it"
e2e_token=$(openssl rand -hex 16)
printf '[[client]]\nname = "e2e-farm"\ntoken_sha256 = "%s"\nallow = ["modules:e2e"]\n' \
  "$(printf %s "$e2e_token" | sha256sum | cut -d' ' -f1)" > "$DIGSIG_ACCESS_DIR/access.toml"
chmod a+r "$DIGSIG_ACCESS_DIR/access.toml"
export DIGSIG_ACCESS_FILE=/etc/digsig/access.toml DIGSIG_INTERNAL_TOKEN
DIGSIG_INTERNAL_TOKEN=$(openssl rand -hex 32)
docker/compose up -d >/dev/null 2>"$work/up-access.log" || { cat "$work/up-access.log"; echo "FAIL  compose up with access control"; failed=$((failed + 1)); }
check "the stack restarts with an access file and the internal token" wait_ready
tokens_required() {
  local code
  code=$(cd "$work" && curl -s -o /dev/null -w '%{http_code}' -X POST -F machine=e2e -F artifact=@modules-in.tar.gz "$GW/sign/modules")
  echo "no token: $code"; [ "$code" = 401 ] || return 1
  code=$(cd "$work" && curl -s -o /dev/null -w '%{http_code}' -X POST -F distro=e2e -F method=RSA \
      -F sw-description=@sw-description "http://e2e-farm:$e2e_token@127.0.0.1:$DIGSIG_PORT/sign/swupdate")
  echo "no rule for swupdate: $code"; [ "$code" = 403 ] || return 1
  # The bbclass way: the token as the password in DIGSIG_SERVER; the
  # gateway passes the caller on to svc-kmod with the internal token.
  local out=$work/out-access; rm -rf "$out"; mkdir -p "$out"
  ( cd "$work" && curl --silent --fail -X POST -F machine=e2e -F hashalg=sha512 -F artifact=@modules-in.tar.gz \
      --output out-access.tar.gz "http://e2e-farm:$e2e_token@127.0.0.1:$DIGSIG_PORT/sign/modules" ) || return 1
  tar -C "$out" -x --no-same-owner -f "$work/out-access.tar.gz" ./lib/modules || return 1
  cmp "$out/lib/modules/6.1.0-e2e/kernel/e2e.ko" "$work/reference.ko"
}
check "tokens: 401 without, 403 outside the rules, signed with the bbclass's URL credentials (byte-identical to sign-file)" tokens_required
