"""XMP packets: parse them safely, read the fields people and photo tools write, and merge an
imgcap caption into one without disturbing anything else.

The same code serves sidecars (`photo.jpg.xmp` / `photo.xmp`) and the XMP packet embedded in a
photo (`write-back --embed` hands the merged packet to exiftool whole). Merging is done on the
parsed RDF/XML tree: every element, attribute, comment and namespace the packet had is written
back; only `dc:description`'s x-default entry and imgcap's own `imgcap:` properties change.

What imgcap wrote is recognised by `imgcap:caption`, a copy of the description it wrote. A
`dc:description` that differs from it (or exists without it) was written by a person or another
tool, and `merge_caption` keeps it unless `force`.

Hostile packets are refused with a reason, never parsed: more than MAX_PACKET_BYTES, a DOCTYPE
or entity declaration (XMP allows neither; it is how entity-expansion bombs start), text that is
not UTF-8, or XML that does not parse.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from indexer.errors import MetadataError

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_LR = "http://ns.adobe.com/lightroom/1.0/"
NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
NS_XML = "http://www.w3.org/XML/1998/namespace"
# imgcap's own namespace: which model wrote the caption, generated or a person's edit, when.
NS_IMGCAP = "https://imgcap.dev/ns/xmp/1.0/"

PREFIXES = {
    "x": NS_X,
    "rdf": NS_RDF,
    "dc": NS_DC,
    "lr": NS_LR,
    "digiKam": NS_DIGIKAM,
    "imgcap": NS_IMGCAP,
}

# darktable's history of a heavily edited photo is a few hundred KB; 16 MB is no photo's sidecar.
MAX_PACKET_BYTES = 16 * 1024 * 1024
# A description longer than this is not a caption (IPTC caps Caption-Abstract at 2000 bytes).
MAX_DESCRIPTION_CHARS = 10_000
MAX_TAG_CHARS = 200
MAX_TAGS = 500

_LIST_TAGS = {f"{{{NS_RDF}}}{k}" for k in ("Alt", "Bag", "Seq")}
_LI = f"{{{NS_RDF}}}li"
_DESCRIPTION = f"{{{NS_RDF}}}Description"
_RDF = f"{{{NS_RDF}}}RDF"
_LANG = f"{{{NS_XML}}}lang"
_DC_DESCRIPTION = f"{{{NS_DC}}}description"
_IMGCAP_FIELDS = ("caption", "model", "source", "date")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

_NEW_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    f'<x:xmpmeta xmlns:x="{NS_X}" x:xmptk="imgcap">\n'
    f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()


@dataclass
class XmpFields:
    """What imgcap reads from one packet."""

    description: str | None = None  # dc:description, x-default (or the first language)
    subjects: list[str] = field(default_factory=list)  # dc:subject
    hierarchical: list[str] = field(default_factory=list)  # lr:hierarchicalSubject "a|b|c"
    digikam_tags: list[str] = field(default_factory=list)  # digiKam:TagsList "a/b/c"
    imgcap: dict[str, str] = field(default_factory=dict)  # imgcap:caption, model, source, date
    problems: list[str] = field(default_factory=list)  # fields skipped, with the reason

    @property
    def written_by_imgcap(self) -> bool:
        """True when the description is the one imgcap wrote (no one changed it since)."""
        return self.description is not None and self.description == self.imgcap.get("caption")


@dataclass
class Packet:
    """A parsed packet, with what surrounded the root element (xpacket wrapper, XML declaration)
    kept verbatim so the merged packet reads like the original."""

    root: ET.Element
    prolog: str
    epilog: str
    namespaces: dict[str, str]  # prefix -> uri, as the packet declared them


def parse(data: bytes, origin: str) -> Packet:
    """Parse an XMP packet; MetadataError(origin, reason) for anything hostile or broken."""
    if len(data) > MAX_PACKET_BYTES:
        raise MetadataError(
            origin, f"XMP is {len(data) / 1e6:.1f} MB, over the {MAX_PACKET_BYTES >> 20} MB limit"
        )
    if _DECLARATION.search(data):
        raise MetadataError(
            origin, "XMP declares a DOCTYPE or XML entities (not allowed in XMP); not read"
        )
    text = _decode(data, origin)
    start = re.search(r"<[A-Za-z_]", text)
    if start is None:
        raise MetadataError(origin, "no XML element in the XMP")
    end = _root_end(text, start.start())
    body = text[start.start() : end]
    # Prefixes as declared, so the merged packet can use the same ones.
    namespaces = {p: u for p, u in re.findall(r'xmlns:([\w.-]+)\s*=\s*["\']([^"\']*)["\']', body)}
    builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
    parser = ET.XMLParser(target=builder)
    try:
        parser.feed(body)
        root = parser.close()
    except ET.ParseError as e:
        raise MetadataError(origin, f"XMP is not well-formed XML ({e})") from None
    if root.tag != _RDF and root.find(f".//{_RDF}") is None:
        raise MetadataError(origin, "not an XMP packet (no rdf:RDF)")
    return Packet(root, text[: start.start()], text[end:], namespaces)


def read_fields(packet: Packet, origin: str = "") -> XmpFields:
    """The description, keywords and imgcap's marks in a packet, cleaned and capped."""
    fields = XmpFields()
    descriptions = list(_properties(packet.root, _DC_DESCRIPTION))
    if descriptions:
        text = _alt_default(descriptions[0])
        if text is not None:
            text = clean_text(text)
            if len(text) > MAX_DESCRIPTION_CHARS:
                fields.problems.append(
                    f"dc:description has {len(text):,} characters (over"
                    f" {MAX_DESCRIPTION_CHARS:,}); ignored"
                )
            elif text:
                fields.description = text
    for key, tag in (
        ("subjects", f"{{{NS_DC}}}subject"),
        ("hierarchical", f"{{{NS_LR}}}hierarchicalSubject"),
        ("digikam_tags", f"{{{NS_DIGIKAM}}}TagsList"),
    ):
        values: list[str] = []
        for prop in _properties(packet.root, tag):
            values.extend(_items(prop))
        setattr(fields, key, values)
    for name in _IMGCAP_FIELDS:
        for prop in _properties(packet.root, f"{{{NS_IMGCAP}}}{name}"):
            value = _text_of(prop)
            if value is not None:
                fields.imgcap[name] = value
                break
    return fields


@dataclass(frozen=True)
class Caption:
    """What imgcap writes: the text and where it came from."""

    text: str
    model: str
    source: str  # "generated" | "user"
    date: str  # ISO 8601


class PersonDescription(Exception):
    """The packet holds a description imgcap did not write; kept (pass force to replace it)."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


def merge_caption(
    existing: bytes | None, caption: Caption, origin: str, force: bool
) -> bytes | None:
    """The packet with `caption` as dc:description (x-default) and imgcap's marks set; every
    other field as it was. None when the packet already says exactly this (nothing to write).

    Raises PersonDescription when a description that imgcap did not write is there and not
    `force`; MetadataError when the existing packet is hostile or broken (never overwritten:
    it may hold a person's work that imgcap can't read).
    """
    # Control characters are not allowed in XML 1.0 (and would drive a terminal elsewhere).
    caption = Caption(
        *(clean_text(v) for v in (caption.text, caption.model, caption.source)), caption.date
    )
    packet = parse(existing if existing is not None else _NEW_PACKET, origin)
    fields = read_fields(packet, origin)
    current = _current_description(packet)
    if current is not None and current.strip():
        ours = current == fields.imgcap.get("caption")
        if not ours and not force:
            raise PersonDescription(current)
        if (
            ours
            and current == caption.text
            and fields.imgcap.get("model") == caption.model
            and fields.imgcap.get("source") == caption.source
        ):
            return None
    holder = _holder(packet.root)
    _set_description(packet.root, holder, caption.text)
    _set_imgcap(packet.root, holder, caption)
    return serialise(packet)


def serialise(packet: Packet) -> bytes:
    """The packet as UTF-8 bytes, with the namespace prefixes it declared."""
    _register(packet.namespaces)
    body = ET.tostring(packet.root, encoding="unicode")
    return (packet.prolog + body + packet.epilog).encode("utf-8")


def clean_text(value: str) -> str:
    """Control characters out (they can drive a terminal or break a CSV); edges trimmed."""
    return _CONTROL.sub("", value).strip()


# ---------------------------------------------------------------------------------- helpers
def _decode(data: bytes, origin: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # XMP allows UTF-16 with a byte order mark
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise MetadataError(
            origin, f"XMP is not valid {encoding.upper()} (byte {e.start}); not read"
        ) from None
    # The XML declaration would name the bytes' encoding; the parser now gets decoded text.
    return text.lstrip("\ufeff")


def _root_end(text: str, start: int) -> int:
    """Where the root element ends: only comments, PIs and whitespace may follow it."""
    tail = re.search(r"(?:\s|<\?.*?\?>|<!--.*?-->)*\Z", text[start:], re.S)
    return start + (tail.start() if tail else len(text) - start)


def _register(namespaces: dict[str, str]) -> None:
    # ElementTree picks prefixes from a process-wide table; teach it this packet's prefixes so
    # `darktable:history` stays `darktable:history`, not `ns3:history`.
    for prefix, uri in {**PREFIXES, **namespaces}.items():
        if not prefix or prefix == "xml":
            continue
        try:
            ET.register_namespace(prefix, uri)
        except ValueError:
            pass  # a prefix like "ns0" is reserved by ElementTree; it invents one instead


def _descriptions(root: ET.Element) -> list[ET.Element]:
    """The top-level rdf:Description elements (not those inside structures, like a history
    entry's)."""
    rdf = root if root.tag == _RDF else root.find(f".//{_RDF}")
    return [] if rdf is None else rdf.findall(_DESCRIPTION)


def _properties(root: ET.Element, tag: str):
    """Every value of property `tag`: child elements of rdf:Description, or attributes
    (RDF's short form for simple values, which darktable and Lightroom use a lot)."""
    for desc in _descriptions(root):
        if tag in desc.attrib:
            el = ET.Element(tag)
            el.text = desc.attrib[tag]
            yield el
        yield from desc.findall(tag)


def _text_of(prop: ET.Element) -> str | None:
    container = next((c for c in prop if c.tag in _LIST_TAGS), None)
    if container is None:
        return prop.text
    items = container.findall(_LI)
    return items[0].text if items else None


def _alt_default(prop: ET.Element) -> str | None:
    container = next((c for c in prop if c.tag in _LIST_TAGS), None)
    if container is None:
        return prop.text
    items = container.findall(_LI)
    for li in items:
        if li.get(_LANG) == "x-default":
            return li.text or ""
    return (items[0].text or "") if items else None


def _items(prop: ET.Element) -> list[str]:
    container = next((c for c in prop if c.tag in _LIST_TAGS), None)
    raw = [li.text or "" for li in container.findall(_LI)] if container is not None else []
    if container is None and prop.text and prop.text.strip():
        raw = [prop.text]
    return [clean_text(v) for v in raw if clean_text(v)]


def _current_description(packet: Packet) -> str | None:
    for prop in _properties(packet.root, _DC_DESCRIPTION):
        return _alt_default(prop)
    return None


def _holder(root: ET.Element) -> ET.Element:
    """The rdf:Description that gets the caption: the one with a description already, else the
    first, else a new one."""
    descs = _descriptions(root)
    for desc in descs:
        if _DC_DESCRIPTION in desc.attrib or desc.find(_DC_DESCRIPTION) is not None:
            return desc
    if descs:
        return descs[0]
    rdf = root if root.tag == _RDF else root.find(f".//{_RDF}")
    assert rdf is not None  # parse() refused packets without one
    return _append(rdf, _DESCRIPTION, {f"{{{NS_RDF}}}about": ""})


def _set_description(root: ET.Element, holder: ET.Element, text: str) -> None:
    prop = holder.find(_DC_DESCRIPTION)
    # A short-form (attribute) description is replaced by the proper language alternative.
    holder.attrib.pop(_DC_DESCRIPTION, None)
    container = None if prop is None else next((c for c in prop if c.tag in _LIST_TAGS), None)
    if prop is None or container is None or container.tag != f"{{{NS_RDF}}}Alt":
        # Absent, or a plain value / wrong container: dc:description is a language alternative.
        if prop is not None:
            holder.remove(prop)
        prop = _append(holder, _DC_DESCRIPTION)
        container = ET.SubElement(prop, f"{{{NS_RDF}}}Alt")
    default = next((li for li in container.findall(_LI) if li.get(_LANG) == "x-default"), None)
    if default is None:
        default = ET.Element(_LI, {_LANG: "x-default"})
        container.insert(0, default)
    default.text = text


def _set_imgcap(root: ET.Element, holder: ET.Element, caption: Caption) -> None:
    values = {
        "caption": caption.text,
        "model": caption.model,
        "source": caption.source,
        "date": caption.date,
    }
    for desc in _descriptions(root):  # old marks, wherever an earlier writer put them
        for name in _IMGCAP_FIELDS:
            tag = f"{{{NS_IMGCAP}}}{name}"
            desc.attrib.pop(tag, None)
            for el in desc.findall(tag):
                desc.remove(el)
    for name, value in values.items():
        _append(holder, f"{{{NS_IMGCAP}}}{name}").text = value


def _append(parent: ET.Element, tag: str, attrib: dict[str, str] | None = None) -> ET.Element:
    """A child element indented like its siblings (cosmetic: people read sidecars too)."""
    siblings = list(parent)
    child = ET.SubElement(parent, tag, attrib or {})
    if siblings and parent.text is not None and not parent.text.strip():
        child.tail = siblings[-1].tail
        siblings[-1].tail = parent.text
    return child
