"""The only writers: atomic files, backup folders and manifests, retention, rollback, the lock."""
