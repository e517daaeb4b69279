/**
 * THROWAWAY DEMO CERTIFICATES — for `dray demo` on 127.0.0.1 only. Never use them for anything
 * else: the private key is public (it is right here), so anyone can impersonate this "server".
 *
 * A demo CA ("dray demo CA (throwaway, demo only)") and a leaf it signed (CA:FALSE, as rustls
 * requires) for localhost, 127.0.0.1 and ::1; EC P-256, valid 2024-01-01 to 2124-01-01. The CA's
 * key was discarded after signing. They live in a module rather than .pem files so that a
 * `deno compile` binary carries them. README.md here says how they were made.
 */

/** The demo CA the demo client trusts. */
export const DEMO_CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBojCCAUigAwIBAgIUE86/dN8HT50reupTCBMcSizFxigwCgYIKoZIzj0EAwIw
LjEsMCoGA1UEAwwjZHJheSBkZW1vIENBICh0aHJvd2F3YXksIGRlbW8gb25seSkw
IBcNMjQwMTAxMDAwMDAwWhgPMjEyNDAxMDEwMDAwMDBaMC4xLDAqBgNVBAMMI2Ry
YXkgZGVtbyBDQSAodGhyb3dhd2F5LCBkZW1vIG9ubHkpMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEOQbjAMluLUZe9lo7pJenikMWUABz8xhm6mNl5sSS299OhXGN
AilUDEPJdfOu5NmCywFWhhG+CSQQ6PUVssEBWqNCMEAwDwYDVR0TAQH/BAUwAwEB
/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFAnVgLNwBIW2mutkBBKE1PDaKwwh
MAoGCCqGSM49BAMCA0gAMEUCIDir6rkO7h7OafFy08/VJtDNN0RxgsB5f2HzfG8W
pX/hAiEAzxK/1AWuH6rnUutN8E7WwxYjRhu/8AQp66zEGo6Qg3U=
-----END CERTIFICATE-----
`;

/** The demo server's certificate (localhost, 127.0.0.1, ::1), signed by {@link DEMO_CA_PEM}. */
export const DEMO_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIB7DCCAZGgAwIBAgIUBBQOSLlUJ8LhfaKrq2iTJvteBAQwCgYIKoZIzj0EAwIw
LjEsMCoGA1UEAwwjZHJheSBkZW1vIENBICh0aHJvd2F3YXksIGRlbW8gb25seSkw
IBcNMjQwMTAxMDAwMDAwWhgPMjEyNDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMMCWxv
Y2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCtOplZChvgCxj4fmA4a
l8Rwfe9hb+ZhcrXE0fvL3N2uYaEzRBEYGKv4opVD1lofi0bfjXFM8wp3CFbtruJS
JKajgaQwgaEwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAww
CgYIKwYBBQUHAwEwLAYDVR0RBCUwI4IJbG9jYWxob3N0hwR/AAABhxAAAAAAAAAA
AAAAAAAAAAABMB8GA1UdIwQYMBaAFAnVgLNwBIW2mutkBBKE1PDaKwwhMB0GA1Ud
DgQWBBS1ko0kT+zwxI/1S/ZJjtwhr8BLVDAKBggqhkjOPQQDAgNJADBGAiEA0sYX
uNYOhzm4aLr63SXmTjslhvkbiq+O7My36fk5RQ8CIQCSVogKV1YUVxVmC/8R9607
CV1DaQFDqxApcEu6jJcXKg==
-----END CERTIFICATE-----
`;

/** The demo server's private key. Public by design: demo only. */
export const DEMO_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgE929U4qVuxrXtpuM
VqDkSqJPgPDP6a0QPklCVU2DHCOhRANCAAQrTqZWQob4AsY+H5gOGpfEcH3vYW/m
YXK1xNH7y9zdrmGhM0QRGBir+KKVQ9ZaH4tG341xTPMKdwhW7a7iUiSm
-----END PRIVATE KEY-----
`;
