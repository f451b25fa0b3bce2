SELECT name, nonce, ciphertext, key_id, created_at, updated_at
FROM secrets
WHERE name = $1
