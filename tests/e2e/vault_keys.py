"""Opens a `foundationd export-vault-keys` file with the master passphrase and
libsodium alone (through ctypes), the way an operator's break-glass script
would: docs/vault.md "Recovery material" documents the format, and this is an
independent reading of it (no foundationd code). The tests use the root token
it yields to look at what foundationd wrote into Vault.

Format (state/sealing.cpp):
  data key = XChaCha20-Poly1305-IETF-decrypt(
                 key   = Argon2id(passphrase, salt, ops_limit, mem_limit),
                 boxed = wrapped_key.ciphertext (nonce 24 || ciphertext+tag),
                 ad    = "foundationd/data-key" || version (1 byte)
                         || alg (u32 LE) || ops_limit (u64 LE) || mem_limit (u64 LE) || salt)
  material = XChaCha20-Poly1305-IETF-decrypt(
                 key   = data key,
                 boxed = sealed[1:] (sealed[0] is the seal format version),
                 ad    = "foundationd/secret" || sealed[0] || "<kind>/<name>/<field>/v<version>")
  material is Vault's init answer: {"keys_base64": [...], "root_token": "..."}.
"""
import base64
import ctypes
import ctypes.util
import json
import struct

_NONCE = 24
_TAG = 16
_KEY = 32


def _sodium():
    name = ctypes.util.find_library("sodium") or "libsodium.so.23"
    lib = ctypes.CDLL(name)
    if lib.sodium_init() < 0:
        raise RuntimeError("sodium_init failed")
    lib.crypto_pwhash.argtypes = [
        ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_ulonglong,
        ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_size_t, ctypes.c_int]
    lib.crypto_aead_xchacha20poly1305_ietf_decrypt.argtypes = [
        ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_void_p,
        ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_ulonglong,
        ctypes.c_char_p, ctypes.c_char_p]
    return lib


def _open(lib, key, ad, boxed):
    if len(boxed) < _NONCE + _TAG:
        raise ValueError("sealed value too short")
    nonce, ct = boxed[:_NONCE], boxed[_NONCE:]
    out = ctypes.create_string_buffer(len(ct) - _TAG)
    n = ctypes.c_ulonglong(0)
    if lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, ctypes.byref(n), None, ct, len(ct), ad, len(ad), nonce, key) != 0:
        raise ValueError("authentication failed (wrong passphrase, or a tampered file)")
    return out.raw[:n.value]


def open_export(path, passphrase):
    """The init material in an export file: {"keys_base64": [...], "root_token": ...}."""
    lib = _sodium()
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != "foundationd-vault-keys" or doc.get("format_version") != 1:
        raise ValueError(f"{path}: not a foundationd-vault-keys file (version 1)")
    w = doc["wrapped_key"]
    kdf = w["kdf"]
    salt = base64.b64decode(w["salt"])
    kek = ctypes.create_string_buffer(_KEY)
    pw = passphrase.encode()
    if lib.crypto_pwhash(kek, _KEY, pw, len(pw), salt, kdf["ops_limit"], kdf["mem_limit"],
                         kdf["alg"]) != 0:
        raise RuntimeError("Argon2id failed")
    wrap_ad = (b"foundationd/data-key" + bytes([w["version"]]) + struct.pack("<I", kdf["alg"])
               + struct.pack("<Q", kdf["ops_limit"]) + struct.pack("<Q", kdf["mem_limit"]) + salt)
    data_key = _open(lib, kek.raw, wrap_ad, base64.b64decode(w["ciphertext"]))
    if len(data_key) != _KEY:
        raise ValueError("the data key has the wrong size")
    s = doc["secret"]
    sealed = base64.b64decode(s["sealed"])
    sid = f'{s["kind"]}/{s["name"]}/{s["field"]}/v{s["version"]}'.encode()
    material = _open(lib, data_key, b"foundationd/secret" + sealed[:1] + sid, sealed[1:])
    return json.loads(material)
