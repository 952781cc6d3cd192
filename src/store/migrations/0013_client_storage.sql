-- Object storage back-ends configured per client (docs/storage.md): one row per client and kind.
--
-- kind: 's3' (any S3-compatible endpoint) or 'azure_blob'.
-- settings: what GET /clients/<name>/storage shows (endpoint, region, bucket or container, prefix,
--   force_path_style, account_name): never a secret.
-- secrets: the credentials (S3 access key id and secret access key; an Azure connection string or
--   account key). Read only by the workers that open the storage; never answered by the API or
--   logged. Protected as the rest of the database is (its access rights and backups).
CREATE TABLE IF NOT EXISTS client_storage (
  client text NOT NULL REFERENCES clients (name) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('s3', 'azure_blob')),
  settings jsonb NOT NULL,
  secrets jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (client, kind)
);
