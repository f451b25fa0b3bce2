INSERT INTO secrets (name, nonce, ciphertext, key_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE
SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, key_id = excluded.key_id,
    updated_at = excluded.updated_at
