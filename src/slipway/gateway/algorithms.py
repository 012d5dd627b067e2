"""What the gateway's SSH server accepts and offers: the key types users may log in with,
signature, key-exchange and MAC algorithms; current OpenSSH's choices without SHA-1 or DSA."""

ACCEPTED_KEYS = {
    b"ssh-ed25519",
    b"ecdsa-sha2-nistp256",
    b"ecdsa-sha2-nistp384",
    b"ecdsa-sha2-nistp521",
    b"ssh-rsa",
}
# No DSA, and no SHA-1 `ssh-rsa` signatures: RSA keys sign with SHA-2.
SIGNATURE_ALGS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-256",
    "rsa-sha2-512",
]
# Key exchanges as current OpenSSH offers them: nothing with SHA-1.
KEX_ALGS = [
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
]
MAC_ALGS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"]  # GCM needs none
