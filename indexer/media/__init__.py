"""One file on disk -> pixels and metadata: walk, decode, EXIF, WebP, RAW, video keyframes, the
CLIP input. No model and no database here."""
