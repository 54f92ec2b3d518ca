"""The person's own words and places about a photo, and write-back: XMP, tags, places from GPS,
exiftool, safe file writes."""
