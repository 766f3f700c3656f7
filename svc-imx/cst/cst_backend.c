/*
 * digsig's back end for NXP's Code Signing Tool (cst).
 *
 * Debian's cst (imx-code-signing-tool 3.3.1+dfsg-2) is linked without
 * libcrypto and without CST's replaceable key back end, so every call into
 * either jumps to address 0. Preloading this library (which pulls in
 * libcrypto as a dependency) supplies both. NXP documents the back end as
 * the part of CST a customer replaces; this is our own implementation of
 * its documented behaviour:
 *
 *  - get_key_file: the private key of a certificate is found by name: the
 *    first "crts" in the path becomes "keys", and the "crt" that ends the
 *    file stem becomes "key" (crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem
 *    -> keys/CSF1_1_sha256_2048_65537_v3_usr_key.pem).
 *  - get_passcode_to_key_file: the key's pass phrase is the first line of
 *    key_pass.txt in the key's directory; no such file means no pass phrase.
 *  - read_file, encryptcbc, encryptccm: only used for encrypted boot
 *    (Install Secret Key / Decrypt Data), which this back end does not
 *    offer: they fail, and cst reports the failure.
 *
 * Unlike NXP's sample, nothing here writes past the caller's buffers, and a
 * certificate path that climbs out of cst's working directory gets no key
 * (a second fence for the key lookup only: the service refuses CSFs naming
 * any file outside the work dir before cst runs, which is what keeps cst's
 * own reads of certificates, SRK tables and data inside it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CST's adapt_layer.h return codes. */
#define CAL_SUCCESS 0
#define CAL_FILE_NOT_FOUND -2
#define CAL_CRYPTO_API_ERROR -8

static int climbs_out(const char *path)
{
    const char *p = path;
    if (path[0] == '/')
        return 1;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* key_file has room for strlen(cert_file) + 1 bytes (CST allocates it so). */
int32_t get_key_file(const char *cert_file, char *key_file)
{
    size_t len;
    char *slash, *dot, *dir;

    if (cert_file == NULL || key_file == NULL || climbs_out(cert_file))
        return CAL_FILE_NOT_FOUND;
    len = strlen(cert_file);
    memcpy(key_file, cert_file, len + 1);

    slash = strrchr(key_file, '/');
    dot = strrchr(slash ? slash + 1 : key_file, '.');
    if (dot == NULL)
        dot = key_file + len;
    if (dot - (slash ? slash + 1 : key_file) < 3 || strncmp(dot - 3, "crt", 3) != 0) {
        fprintf(stderr, "Error: cannot derive a key file name from certificate %s: "
                        "its name must end in crt before the extension\n", cert_file);
        return CAL_FILE_NOT_FOUND;
    }
    memcpy(dot - 3, "key", 3);

    /* As NXP's sample: the first "crts" anywhere in the path. */
    dir = strstr(key_file, "crts");
    if (dir != NULL)
        memcpy(dir, "keys", 4);
    return CAL_SUCCESS;
}

/* OpenSSL pem_password_cb: userdata is the key file's path. */
int get_passcode_to_key_file(char *buf, int size, int rwflag, void *userdata)
{
    const char *key_file = userdata;
    const char *slash;
    size_t dirlen;
    char *pass_file;
    FILE *fp;
    size_t n;

    (void)rwflag;
    if (buf == NULL || size <= 0 || key_file == NULL)
        return 0;
    slash = strrchr(key_file, '/');
    dirlen = slash ? (size_t)(slash - key_file) + 1 : 0;
    pass_file = malloc(dirlen + sizeof "key_pass.txt");
    if (pass_file == NULL)
        return 0;
    memcpy(pass_file, key_file, dirlen);
    memcpy(pass_file + dirlen, "key_pass.txt", sizeof "key_pass.txt");
    fp = climbs_out(pass_file) ? NULL : fopen(pass_file, "r");
    free(pass_file);
    if (fp == NULL)
        return 0; /* no pass phrase file: the key is not encrypted */
    if (fgets(buf, size, fp) == NULL)
        buf[0] = '\0';
    fclose(fp);
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    return (int)n;
}

/* Encrypted boot is not offered: these fail, and cst says so. */
uint8_t *read_file(const char *name, size_t *bytes)
{
    (void)name;
    if (bytes)
        *bytes = 0;
    fprintf(stderr, "Error: encrypted boot is not supported by this CST back end\n");
    return NULL;
}

int32_t encryptcbc(void)
{
    fprintf(stderr, "Error: encrypted boot is not supported by this CST back end\n");
    return CAL_CRYPTO_API_ERROR;
}

int32_t encryptccm(void)
{
    fprintf(stderr, "Error: encrypted boot is not supported by this CST back end\n");
    return CAL_CRYPTO_API_ERROR;
}
