"""A query's language: which text tower reads it (CLIP's own for English, the multilingual tower
for any other language), detected offline from its script, its letters and word lists.

Why not a statistical detector: langid.py needs 1.7 s to unpack its model on the 2-core box
(most of a cold search's 2 s), and on one- to three-word queries, what people type into a photo
search, it guesses ("chat noir" is English to it, "dog" 17 % English);
benchmarks/bench_language.py measures both on the same table of short queries. Here a
non-Latin script decides at once (Han without kana: Chinese, kana: Japanese, Hangul: Korean,
Cyrillic: Russian, ...); Latin-script words vote for the languages whose lists hold them (a word
in k lists gives each 1/k), letters only one language uses vote too (ß, ñ, ã, ą, ğ, ...), and
German or Dutch compounds vote by their last part ("Eiffelturm"). Another language needs a
whole word's worth of votes and more than English, so a query with no evidence ("dog",
"Paris 2019", "café") stays English: a wrong English routing costs an
English query little, the multilingual tower being trained to give CLIP's own vectors.
"""

from __future__ import annotations

import re

ENGLISH = "en"
AUTO = "auto"
_CODE = re.compile(r"[a-z]{2,3}")

# Scripts that name one language outright: (first, last code point, language). Compared by
# code point: a regex class over the Han block costs ~19 ms to compile, on every cold search.
_SCRIPTS = (
    (0x3040, 0x30FF, "ja"), (0x31F0, 0x31FF, "ja"),  # hiragana, katakana: Japanese even with Han
    (0xAC00, 0xD7AF, "ko"), (0x1100, 0x11FF, "ko"), (0x3130, 0x318F, "ko"),  # Hangul
    (0x4E00, 0x9FFF, "zh"), (0x3400, 0x4DBF, "zh"), (0xF900, 0xFAFF, "zh"),  # Han
    (0x0400, 0x04FF, "ru"),  # Cyrillic (Ukrainian's own letters: below)
    (0x0370, 0x03FF, "el"), (0x0600, 0x06FF, "ar"), (0x0590, 0x05FF, "he"),
    (0x0E00, 0x0E7F, "th"), (0x0900, 0x097F, "hi"),
)  # fmt: skip
_UKRAINIAN = frozenset("іїєґІЇЄҐ")
_ORDER = ("ja", "ko", "zh", "uk", "ru", "el", "ar", "he", "th", "hi")


def _script(text: str) -> str | None:
    """The language a non-Latin script names (the most frequent one; kana makes Han Japanese)."""
    counts: dict[str, int] = {}
    for ch in text:
        o = ord(ch)
        if o < 0x0370:
            continue  # Latin, digits, punctuation: most characters of most queries
        for lo, hi, code in _SCRIPTS:
            if lo <= o <= hi:
                if code == "ru" and ch in _UKRAINIAN:
                    code = "uk"
                counts[code] = counts.get(code, 0) + 1
                break
    if not counts:
        return None
    if "ja" in counts:
        return "ja"
    if "ru" in counts and "uk" in counts:
        return "uk"
    return max(_ORDER, key=lambda c: counts.get(c, 0))


# Letters of one language (or a few: the vote is split among them). Not é, à, ë, ï: English
# borrows them ("café", "à la carte", "naïve"), and a generated caption may hold the word.
_LETTERS = {
    "ß": ("de",), "ä": ("de",), "ö": ("de",), "ü": ("de",),
    "ñ": ("es",), "¿": ("es",), "¡": ("es",),
    "ã": ("pt",), "õ": ("pt",), "ç": ("fr", "pt"),
    "œ": ("fr",), "ê": ("fr", "pt"), "â": ("fr", "pt"), "î": ("fr",), "û": ("fr",),
    "è": ("fr", "it"), "ù": ("fr", "it"), "ò": ("it",), "ì": ("it",),
    "á": ("es", "pt"), "í": ("es", "pt"), "ó": ("es", "pt"), "ú": ("es", "pt"),
    "ą": ("pl",), "ę": ("pl",), "ł": ("pl",), "ś": ("pl",), "ź": ("pl",), "ż": ("pl",),
    "ě": ("cs",), "ř": ("cs",), "ů": ("cs",), "š": ("cs",), "č": ("cs",), "ž": ("cs",),
    "ğ": ("tr",), "ı": ("tr",), "ş": ("tr",),
    "å": ("sv",), "ø": ("da",), "æ": ("da",),
    "đ": ("vi",), "ơ": ("vi",), "ư": ("vi",), "ạ": ("vi",), "ả": ("vi",), "ế": ("vi",),
}  # fmt: skip

# Function words and the subjects people search their photos for, per language (lowercase).
_WORDS = {
    "en": """the a an of in on at to and or with without from by for near under my our his her
        their is are this that photo photos picture pictures dog dogs cat cats beach sea lake
        river mountain mountains snow car cars street road red blue green white black yellow
        birthday party wedding family kids children child baby mother father grandma grandpa
        sunset sunrise tree trees flower flowers house church city bridge forest park garden
        food cake christmas holiday holidays vacation summer winter spring autumn fall night
        day friends friend boat train bike bicycle horse bird birds sky clouds rain old new
        big small two three playing eating sitting standing walking running man woman people
        girl boy tower castle museum market dinner lunch breakfast cathedral show me
        chat see die am pain gift rose art kind mist bad hut""",
    "de": """der die das den dem des ein eine einen einem einer und oder mit ohne von vom zum
        zur im am auf unter bei nach aus für mein meine unser unsere ist sind bild bilder foto
        fotos hund hunde katze katzen strand meer see fluss berg berge schnee auto autos straße
        strasse rot rote roter rotes blau blaue grün grüne weiß weiße schwarz schwarze gelb
        geburtstag feier party hochzeit familie kinder kind baby mutter vater oma opa
        sonnenuntergang sonnenaufgang baum bäume blume blumen haus kirche stadt brücke wald park
        garten essen kuchen weihnachten urlaub ferien sommer winter frühling herbst nacht tag
        freunde freund boot zug fahrrad pferd vogel vögel himmel wolken regen alt alte neu neue
        groß große klein kleine zwei drei spielen spielt mann frau leute mädchen junge turm
        schloss burg markt abendessen frühstück dom kirche fest turm hafen insel""",
    "fr": """le la les un une des du de au aux et ou avec sans sur sous dans chez pour près mon
        ma mes notre nos est sont photo photos chien chiens chat chats plage mer lac rivière
        montagne montagnes neige voiture voitures rue route rouge bleu bleue vert verte blanc
        blanche noir noire jaune anniversaire fête mariage famille enfants enfant bébé mère
        père mamie papi coucher soleil lever arbre arbres fleur fleurs maison église ville pont
        forêt parc jardin gâteau noël vacances été hiver printemps automne nuit jour amis ami
        bateau vélo cheval oiseau oiseaux ciel nuages pluie vieux vieille nouveau nouvelle grand
        grande petit petite deux trois homme femme gens fille garçon tour château musée marché
        dîner déjeuner cathédrale""",
    "es": """el la los las un una unos unas del de al y o con sin sobre bajo en para cerca mi
        mis nuestro nuestra es son foto fotos perro perros gato gatos playa mar lago río montaña
        montañas nieve coche coches carro calle camino rojo roja azul verde blanco blanca negro
        negra amarillo cumpleaños fiesta boda familia niños niño niña bebé madre padre abuela
        abuelo atardecer amanecer árbol árboles flor flores casa iglesia ciudad puente bosque
        parque jardín comida pastel tarta navidad vacaciones verano invierno primavera otoño
        noche día amigos amigo barco tren bicicleta caballo pájaro pájaros cielo nubes lluvia
        viejo vieja nuevo nueva grande pequeño pequeña dos tres hombre mujer gente chica chico
        torre castillo museo mercado cena almuerzo desayuno catedral""",
    "it": """il lo la i gli le un uno una del della dei delle di da al alla e o con senza su
        sotto in per vicino mio mia miei nostro nostra è sono foto cane cani gatto gatti
        spiaggia mare lago fiume montagna montagne neve macchina auto strada rosso rossa blu
        azzurro verde bianco bianca nero nera giallo compleanno festa matrimonio famiglia
        bambini bambino bambina madre padre nonna nonno tramonto alba albero alberi fiore fiori
        casa chiesa città ponte bosco parco giardino cibo torta natale vacanze estate inverno
        primavera autunno notte giorno amici amico barca treno bicicletta cavallo uccello cielo
        nuvole pioggia vecchio vecchia nuovo nuova grande piccolo piccola due tre uomo donna
        gente ragazza ragazzo torre castello museo mercato cena pranzo colazione duomo""",
    "pt": """o a os as um uma do da dos das de ao e ou com sem sobre sob em no na nos nas para
        perto meu minha nosso nossa é são foto fotos cão cães cachorro gato gatos praia mar
        lago rio montanha montanhas neve carro carros rua estrada vermelho vermelha azul verde
        branco branca preto preta amarelo aniversário festa casamento família crianças criança
        bebê mãe pai avó avô pôr sol nascer árvore árvores flor flores casa igreja cidade ponte
        floresta parque jardim comida bolo natal férias verão inverno primavera outono noite
        dia amigos amigo barco trem bicicleta cavalo pássaro céu nuvens chuva velho velha novo
        nova grande pequeno pequena dois duas três homem mulher pessoas menina menino torre
        castelo museu mercado jantar almoço catedral""",
    "nl": """de het een van en of met zonder op onder in bij naar uit voor mijn onze is zijn
        foto fotos hond honden kat katten strand zee meer rivier berg bergen sneeuw auto autos
        straat weg rood rode blauw blauwe groen groene wit witte zwart zwarte geel verjaardag
        feest bruiloft familie kinderen kind baby moeder vader oma opa zonsondergang
        zonsopgang boom bomen bloem bloemen huis kerk stad brug bos park tuin eten taart
        kerstmis vakantie zomer winter lente herfst nacht dag vrienden vriend boot trein fiets
        paard vogel vogels lucht wolken regen oud oude nieuw nieuwe groot grote klein kleine
        twee drie man vrouw mensen meisje jongen toren kasteel museum markt diner ontbijt""",
}
# Words that name no subject, per language: a photo's own words need not hold them to rank first
# ("die Großmutter" is Großmutter). English's are search/query.FUNCTION_WORDS.
FUNCTION_WORDS = {
    "de": "der die das den dem des ein eine einen einem einer und oder mit von vom zum zur im am"
    " an auf in bei nach aus für mein meine unser unsere foto fotos bild bilder",
    "fr": "le la les l un une des du de d au aux et ou avec sur sous dans chez pour mon ma mes"
    " notre nos photo photos",
    "es": "el la los las un una unos unas del de al y o con sobre en para mi mis nuestro"
    " nuestra foto fotos",
    "it": "il lo la i gli le l un uno una del della dei delle di da al alla e o con su in per"
    " mio mia nostro nostra foto",
    "pt": "o a os as um uma do da dos das de ao e ou com em no na nos nas para meu minha nosso"
    " nossa foto fotos",
    "nl": "de het een van en of met op in bij naar uit voor mijn onze foto fotos",
}


def function_words(lang: str | None) -> frozenset[str]:
    """The words of `lang` that name no subject (empty for a language without a list)."""
    return frozenset(FUNCTION_WORDS.get(lang or "", "").split())


# Month names: "juillet 2021" is French before understanding reads it as a date.
_MONTHS = {
    "de": "januar februar märz april mai juni juli august september oktober november dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio"
    " julio agosto septiembre octubre noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno"
    " luglio agosto settembre ottobre novembre dicembre",
    "pt": "janeiro fevereiro março abril maio junho"
    " julho agosto setembro outubro novembro dezembro",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "en": "january february march april may june july august september october november december",
}
_VOCAB: dict[str, dict[str, float]] = {}
for _lang, _text in _WORDS.items():
    for _w in _text.split() + _MONTHS[_lang].split():
        _VOCAB.setdefault(_w, {})[_lang] = 1.0
for _w, _langs in _VOCAB.items():
    for _lang in _langs:
        _langs[_lang] = 1.0 / len(_langs)
# English words that other lists hold too ("chat", "see", "die") stay English alone: a tie.
# Compound heads: a long unknown word ending in one of these nouns ("Eiffelturm", "Zeeland")
_HEADS = {
    lang: tuple(w for w in _WORDS[lang].split() if len(w) >= 4 and ENGLISH not in _VOCAB[w])
    for lang in ("de", "nl")
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect(text: str) -> str:
    """The ISO 639-1 code of the query's language; English when nothing says otherwise."""
    code = _script(text)
    if code is not None:
        return code
    score: dict[str, float] = {}
    for word in _WORD.findall(text.lower()):
        langs = _VOCAB.get(word)
        if langs is None:
            for ch in set(word):
                for lang in _LETTERS.get(ch, ()):
                    score[lang] = score.get(lang, 0.0) + 1.0 / len(_LETTERS[ch])
            if len(word) >= 7:
                for lang, heads in _HEADS.items():
                    if word.endswith(heads):
                        score[lang] = score.get(lang, 0.0) + 1.0
            continue
        for lang, share in langs.items():
            score[lang] = score.get(lang, 0.0) + share
    english = score.pop(ENGLISH, 0.0)
    if not score:
        return ENGLISH
    best = max(sorted(score), key=lambda lang: score[lang])
    # At least one word's worth: a lone "façade" or "Strand" is not enough to leave English.
    return best if score[best] > english and score[best] >= 1.0 else ENGLISH


def check_lang(value: str | None) -> str:
    """--lang's value: auto, or a language code (2-3 lowercase letters: en, de, zh, ...)."""
    v = (value or AUTO).strip().lower()
    if v != AUTO and not _CODE.fullmatch(v):
        from indexer.errors import UsageError

        raise UsageError(
            f"--lang {value!r}: auto, or a language code such as en, de, fr, es, zh, ja"
        )
    return v


def query_language(text: str | None, lang: str = AUTO) -> str:
    """The language a query is read in: forced by --lang, else detected."""
    return detect(text or "") if lang == AUTO else lang
