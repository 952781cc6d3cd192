-- Rotation of a client's callback signing secret: after a rotation the previous secret stays
-- valid, and callbacks carry a signature with each, until the operator ends the overlap.
ALTER TABLE clients ADD COLUMN IF NOT EXISTS previous_signing_secret text;
