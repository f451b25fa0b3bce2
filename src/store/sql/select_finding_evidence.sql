-- Ids as text, so one erasure pass reads every free-text table alike.
SELECT CAST(id AS TEXT), evidence FROM findings ORDER BY id
