SELECT fingerprint, annotations FROM alerts ORDER BY fingerprint
