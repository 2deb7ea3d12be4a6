-- Signature schemes (issue 13): v1 (HMAC-SHA256, whsec_ secrets), v1a (ed25519, whsk_ signing
-- keys; receivers get the whpk_ public key), or both. Both kinds of key live in webhook_secrets,
-- told apart by their prefix, and rotate by the same rules.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS signature_scheme text NOT NULL DEFAULT 'v1'
    CHECK (signature_scheme IN ('v1', 'v1a', 'v1,v1a'));
