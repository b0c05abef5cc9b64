"""Word lists and text builders for `manage.py seed_demo`.

Everything here is pure: each builder takes a `random.Random` and returns text, so the same seed
gives the same data. Nothing touches the database.
"""

import random

# (name, slug, relative share of articles)
CATEGORIES = [
    ("World", "world", 14),
    ("Politics", "politics", 13),
    ("Business", "business", 12),
    ("Technology", "technology", 11),
    ("Science", "science", 7),
    ("Health", "health", 7),
    ("Sports", "sports", 11),
    ("Culture", "culture", 7),
    ("Opinion", "opinion", 6),
    ("Travel", "travel", 4),
    ("Climate", "climate", 5),
    ("Education", "education", 3),
]

# Per category: who acts (subjects), what they act on (topics), and places.
_SUBJECTS = {
    "world": ["UN envoys", "Foreign ministers", "Rebel leaders", "Aid agencies", "Border officials", "Diplomats",
              "Peacekeepers", "Regional leaders", "Coalition partners", "Refugee groups"],
    "politics": ["Lawmakers", "The Senate", "The governor", "Opposition leaders", "The prime minister",
                 "City council", "Campaign officials", "The supreme court", "Party delegates", "Voters"],
    "business": ["The central bank", "Shareholders", "Retail giants", "Start-up founders", "Investors",
                 "Carmakers", "Airlines", "Regulators", "Oil producers", "Chipmakers"],
    "technology": ["Engineers", "Cloud providers", "Social networks", "App developers", "Chip designers",
                   "Security researchers", "Phone makers", "AI labs", "Open-source maintainers", "Telecoms"],
    "science": ["Astronomers", "Physicists", "Marine biologists", "Geneticists", "Researchers",
                "Space agencies", "Chemists", "Archaeologists", "Neuroscientists", "Ecologists"],
    "health": ["Doctors", "Hospitals", "Health officials", "Nurses", "Drug regulators", "Vaccine makers",
               "Public health experts", "Clinics", "Dietitians", "Pharmacists"],
    "sports": ["The champions", "Coaches", "The home side", "Olympic hopefuls", "The striker", "Veterans",
               "League officials", "The underdogs", "Team captains", "Rookies"],
    "culture": ["Filmmakers", "Novelists", "Museums", "Festival organisers", "Pop stars", "Critics",
                "Theatre companies", "Street artists", "Orchestras", "Publishers"],
    "opinion": ["Our columnist", "Readers", "The editorial board", "A former minister", "Economists",
                "Teachers", "Young voters", "Small business owners", "Scientists", "Parents"],
    "travel": ["Travellers", "Hoteliers", "Tour guides", "Rail operators", "Backpackers", "Cruise lines",
               "Island resorts", "Mountain towns", "Budget airlines", "Food lovers"],
    "climate": ["Climate scientists", "Activists", "Farmers", "Coastal towns", "Energy firms",
                "Negotiators", "Forest rangers", "Wind farm builders", "Insurers", "Glaciologists"],
    "education": ["Teachers", "Universities", "School boards", "Students", "Education ministers",
                  "Head teachers", "Researchers", "Parents", "Apprentices", "Exam boards"],
}
_TOPICS = {
    "world": ["ceasefire talks", "a refugee crisis", "border tensions", "a trade pact", "sanctions",
              "humanitarian aid", "a disputed election", "the peace accord", "food shortages", "an embassy row"],
    "politics": ["the budget bill", "voting reform", "tax cuts", "a corruption probe", "the housing plan",
                 "campaign finance", "a coalition deal", "the pension overhaul", "immigration rules", "a recall vote"],
    "business": ["interest rates", "quarterly earnings", "a merger", "supply chains", "inflation",
                 "job cuts", "the housing market", "a stock rally", "trade tariffs", "consumer spending"],
    "technology": ["artificial intelligence", "a data breach", "new chips", "privacy rules", "the cloud outage",
                   "electric cars", "quantum computing", "a smartphone launch", "open-source software",
                   "satellite internet"],
    "science": ["a distant exoplanet", "gene editing", "dark matter", "a new species", "fusion energy",
                "ancient DNA", "the Mars mission", "coral reefs", "a comet flyby", "brain mapping"],
    "health": ["a flu season", "hospital waiting lists", "a new vaccine", "mental health", "drug prices",
               "sleep research", "antibiotic resistance", "heart disease", "nutrition labels", "a measles outbreak"],
    "sports": ["the title race", "a transfer record", "the final", "doping rules", "the World Cup",
               "a comeback win", "injury worries", "the marathon", "a derby clash", "the playoffs"],
    "culture": ["a blockbuster sequel", "the book prize", "a lost painting", "streaming deals", "a world tour",
                "the film festival", "a theatre revival", "the art market", "a music award", "a memoir"],
    "opinion": ["the cost of living", "remote work", "public transport", "free speech", "city planning",
                "social media", "the four-day week", "school meals", "rent control", "local news"],
    "travel": ["hidden beaches", "night trains", "mountain trails", "city breaks", "overtourism",
               "street food", "island hopping", "winter escapes", "slow travel", "heritage sites"],
    "climate": ["record heat", "sea level rise", "carbon taxes", "wildfires", "solar power",
                "melting glaciers", "drought", "flood defences", "emissions targets", "reforestation"],
    "education": ["exam results", "tuition fees", "teacher shortages", "school funding", "online learning",
                  "reading scores", "student debt", "class sizes", "vocational training", "a new curriculum"],
}
PLACES = ["Paris", "Nairobi", "Tokyo", "Brazil", "Ohio", "Berlin", "Mumbai", "Lagos", "Sydney", "Mexico City",
          "Seoul", "Cairo", "Toronto", "Jakarta", "Madrid", "Istanbul", "Lima", "Oslo", "Manila", "Chicago",
          "Warsaw", "Cape Town", "Hanoi", "Athens", "Dublin", "Santiago", "Vienna", "Dhaka", "Lisbon", "Texas"]

_VERBS = ["back", "reject", "weigh", "push for", "warn over", "rally behind", "clash over", "unveil plans for",
          "vote on", "question", "embrace", "delay", "race to secure", "call for review of", "bet on",
          "scramble over", "sign off on", "take aim at", "struggle with", "celebrate"]
_NOUNS = ["fears", "protests", "record demand", "new data", "mounting pressure", "a surprise report",
          "talks", "criticism", "rising costs", "a heatwave", "delays", "strong results", "uncertainty",
          "a legal challenge", "public anger", "fresh doubts"]
_TITLE_TEMPLATES = [
    "{S} {v} {t}",
    "{S} {v} {t} amid {n}",
    "{S} {v} {t} in {p}",
    "What {t} means for {p}",
    "{T}: {s} {v} a new approach",
    "Why {t} matters more than ever",
    "Inside the fight over {t} in {p}",
    "{P}: {s} {v} {t}",
    "{k} things to know about {t}",
    "How {s} are rethinking {t}",
    "{S} {v} {t} after {n}",
    "The quiet revolution in {t}",
    "Analysis: {t} and the road ahead",
    "{T} tests {s} in {p}",
]
_SENTENCES = [
    "{S} said on {d} that {t} would shape the coming months in {p}.",
    "The debate over {t} has intensified since the spring, with {s} divided on what to do next.",
    "Officials in {p} described the situation as fluid and promised a fuller statement within days.",
    "Critics argue that {t} has been handled poorly, pointing to {n} as evidence.",
    "{S} in {p} told reporters they expected a decision before the end of the quarter.",
    "Analysts noted that similar moves in {p} had produced mixed results over the past decade.",
    "For many residents, {t} is less an abstract question than a matter of everyday life.",
    "The latest figures show a sharp change compared with the same period last year.",
    "Supporters of the plan say it offers a practical answer to {n}.",
    "Several groups have already announced they will challenge the proposal.",
    "{S} have been meeting privately for weeks, according to people familiar with the talks.",
    "It is not the first time {t} has dominated the headlines, but the stakes now appear higher.",
    "Observers in {p} say the outcome could set a precedent well beyond the region.",
    "A spokesperson declined to comment on the details but confirmed that discussions were continuing.",
    "Independent experts cautioned against drawing firm conclusions from early data.",
    "Local businesses reported a noticeable shift in demand over the past month.",
    "The proposal includes a review clause that would take effect after two years.",
    "Polling suggests that public opinion on {t} remains closely split.",
    "Those involved say the next few weeks will be decisive.",
    "{S} in {p} are expected to publish a detailed report early next year.",
]
_COMMENTS = [
    "Great piece, thanks for covering this.", "I am not convinced by the argument here.",
    "This matches what we are seeing locally.", "Finally someone explains it clearly.",
    "The numbers in the third paragraph look off to me.", "Would love a follow-up on this.",
    "Sharing this with my team.", "Balanced reporting, appreciated.", "This will not end well.",
    "Interesting, but what about the long-term costs?", "I live in the area and it is worse than reported.",
    "Who exactly benefits from this?", "Good to see this getting attention.",
    "The headline oversells it a bit.", "Well researched and well written.",
    "We have been here before.", "Can you link the original report?", "Surprising, honestly.",
    "This deserves more coverage.", "Let us see what happens next week.",
]
FIRST_NAMES = ["Amara", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isabel", "Jonas",
               "Kemi", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Samir", "Tara", "Umar",
               "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Ana", "Bruno", "Carla", "Dev", "Emma", "Felix",
               "Gita", "Hugo", "Ines", "Jamal", "Kira", "Leo", "Mina", "Nils"]
LAST_NAMES = ["Adeyemi", "Baker", "Chen", "Dubois", "Eriksen", "Fernandes", "Garcia", "Haddad", "Ivanova",
              "Jensen", "Kowalski", "Lopez", "Morales", "Nakamura", "Okafor", "Patel", "Quintero", "Rossi",
              "Schmidt", "Tanaka", "Usman", "Varga", "Williams", "Xu", "Yilmaz", "Zhang", "Andersson",
              "Bianchi", "Costa", "Diallo", "Evans", "Fischer", "Gupta", "Horvat", "Ito", "Kim", "Mensah",
              "Novak", "Park", "Silva"]
_BIO_TEMPLATES = [
    "{name} covers {c} for newsite, with a focus on {t}.",
    "{name} is a senior {c} correspondent based in {p}.",
    "{name} writes about {c} and {t}. Previously a reporter in {p}.",
    "{name} joined newsite in {y} and reports on {c} from {p}.",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _lower_first(text: str) -> str:
    """'The senate' -> 'the senate', but 'UN envoys' and 'AI labs' keep their capitals."""
    return text if text[1:2].isupper() else text[0].lower() + text[1:]


def _fill(rng: random.Random, template: str, slug: str) -> str:
    subjects, topics = _SUBJECTS[slug], _TOPICS[slug]
    subject = rng.choice(subjects)
    topic = rng.choice(topics)
    return template.format(
        S=subject, s=_lower_first(subject),
        t=topic, T=topic[0].upper() + topic[1:], v=rng.choice(_VERBS), n=rng.choice(_NOUNS),
        p=rng.choice(PLACES), P=rng.choice(PLACES), k=rng.randint(3, 9), d=rng.choice(_DAYS),
    )


def headline(rng: random.Random, slug: str) -> str:
    """A headline-like title for a category (max ~120 chars)."""
    return _fill(rng, rng.choice(_TITLE_TEMPLATES), slug)


class SentencePool:
    """Pre-built body sentences per category: bodies are sampled from them, which keeps building
    50,000 bodies cheap (one `sample` per paragraph instead of one template fill per sentence)."""

    def __init__(self, rng: random.Random, per_category: int = 120):
        self.sentences = {
            slug: [_fill(rng, rng.choice(_SENTENCES), slug) for _ in range(per_category)]
            for _, slug, _ in CATEGORIES
        }

    def excerpt(self, rng: random.Random, slug: str) -> str:
        return " ".join(rng.sample(self.sentences[slug], 2))

    def body(self, rng: random.Random, slug: str) -> str:
        """5-6 paragraphs of 2-4 sentences: about 1-2 KB."""
        pool = self.sentences[slug]
        return "\n\n".join(" ".join(rng.sample(pool, rng.randint(2, 4))) for _ in range(rng.randint(5, 6)))


def comment_body(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(_COMMENTS)
    return f"{rng.choice(_COMMENTS)} {rng.choice(_COMMENTS)}"


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def author_bio(rng: random.Random, name: str, category_name: str, slug: str) -> str:
    return rng.choice(_BIO_TEMPLATES).format(
        name=name, c=category_name.lower(), t=rng.choice(_TOPICS[slug]), p=rng.choice(PLACES),
        y=rng.randint(2009, 2025),
    )


# --- Demo hero pictures: drawn here, offline (Pillow), a few dozen shared by every article ------

DEMO_PICTURES = 36
PICTURE_SIZE = (1280, 720)  # 16:9, wider than the largest rendition (articles/images.py)
PICTURES_VERSION = "1"  # bump when hero_picture draws differently
_SKIES = [((255, 183, 94), (255, 94, 98)), ((120, 200, 255), (220, 240, 255)), ((40, 48, 110), (230, 120, 90)),
          ((20, 30, 60), (90, 110, 170)), ((250, 220, 160), (250, 150, 120)), ((170, 220, 210), (240, 250, 240))]
_LANDS = [(34, 85, 60), (60, 70, 90), (110, 80, 60), (40, 60, 100), (90, 110, 50), (70, 50, 80)]


def hero_picture(index: int):
    """Demo picture number `index` (0 <= index < DEMO_PICTURES) as a PIL image: a sky, a sun and
    layers of hills or a skyline. Deterministic (the same index, the same pixels); ~30 ms."""
    from PIL import Image, ImageDraw  # the seeder's only use of Pillow

    rng = random.Random(f"hero-{index}")
    width, height = PICTURE_SIZE
    top, bottom = _SKIES[index % len(_SKIES)]
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), sky)
    draw = ImageDraw.Draw(image)
    sun_x, sun_y, radius = rng.randint(200, width - 200), rng.randint(120, height // 2), rng.randint(50, 120)
    draw.ellipse((sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius), fill=(255, 244, 214))
    land = _LANDS[(index // len(_SKIES)) % len(_LANDS)]
    layers = 3 + index % 2
    for layer in range(layers):
        haze = 0.6 * (layers - 1 - layer) / layers  # far layers fade into the sky
        colour = tuple(int(c * (1 - haze) + b * haze) for c, b in zip(land, bottom, strict=True))
        base = int(height * (0.5 + 0.12 * layer))
        if index % 3 == 2 and layer == layers - 1:  # a city skyline in front
            x = 0
            while x < width:
                w, h = rng.randint(40, 120), rng.randint(60, 240)
                draw.rectangle((x, base - h, x + w, height), fill=colour)
                x += w + rng.randint(0, 12)
            continue
        points, x = [(0, height)], 0
        while x <= width:
            points.append((x, base - rng.randint(0, int(height * 0.16))))
            x += rng.randint(60, 180)
        points += [(width, base), (width, height)]
        draw.polygon(points, fill=colour)
    return image


def hero_picture_jpeg(index: int) -> bytes:
    """hero_picture(index) as JPEG bytes (what an editor would upload)."""
    import io

    out = io.BytesIO()
    hero_picture(index).save(out, "JPEG", quality=88)
    return out.getvalue()
