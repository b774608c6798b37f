"""The word lists and thresholds the keyword rules read.

They are part of the behaviour (a change alters keywords, so it bumps ``RULES_VERSION``)
and are documented in docs/mining.md. Kept apart from the code that reads them so that a
list can be reviewed, and changed, without reading the tagger.
"""

from __future__ import annotations


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = word_set(
    """a an the this that these those some any each every either neither no another
    other others such what which whose whatever all both several many much more most
    few fewer less least own same various certain enough my your his her its our their"""
)
PRONOUNS = word_set(
    """i me mine myself you yours yourself yourselves he him himself she hers herself it
    itself we us ours ourselves they them theirs themselves someone somebody something
    anyone anybody anything everyone everybody everything nobody nothing none who whom
    whoever one ones"""
)
PREPOSITIONS = word_set(
    """about above across after against along alongside amid amidst among amongst around
    as at atop before behind below beneath beside besides between beyond by despite down
    during except for from in inside into like near nearby next of off on onto opposite out
    outside over past per through throughout to toward towards under underneath unlike
    until up upon via with within without"""
)
CONJUNCTIONS = word_set(
    """and or but nor so yet if then than because although though whereas whether since
    unless when where while why how once also too etc"""
)
AUXILIARIES = word_set(
    """is are was were be been being am has have had having do does did doing done can
    could will would shall should may might must get gets got getting seem seems seemed
    seeming appear appears appeared appearing look looks looked looking s re ve ll d t m
    dont doesnt didnt isnt arent wasnt werent cant cannot wont wouldnt couldnt shouldnt"""
)
#: Verbs VLMs use to talk about the picture itself; never keywords.
CAPTION_VERBS = word_set(
    """show shows showing shown showcase showcases showcasing depict depicts depicting
    depicted display displays displaying displayed feature features featuring featured
    capture captures capturing captured contain contains containing contained include
    includes including included provide provides providing create creates creating
    created add adds adding added make makes making made give gives giving take takes
    taking taken suggest suggests suggesting indicate indicates indicating see seen
    seeing let lets highlight highlights highlighting emphasize emphasizes emphasizing
    visible"""
)
#: Third-person verb forms common in captions that are also plural nouns in the lexicon
#: ("the image shows", "a man rides a horse"): read as verbs unless a determiner,
#: number or adjective comes right before them.
VERB_S_FORMS = word_set(
    """stands sits holds rides walks lies hangs rests leans waits carries wears plays eats
    drinks drives flies crosses jumps reads smiles poses swims grazes travels moves sails
    runs looks overlooks surrounds fills watches talks works sleeps stares appears seems"""
)
#: Base forms of the same verbs: read as verbs right after a noun or pronoun
#: ("children play", "they stand"), as nouns elsewhere ("a play", "a fruit stand").
VERB_BASE_FORMS = word_set(
    """stand sit hold ride walk lie hang rest lean wait carry wear play eat drink drive
    fly cross jump read smile pose swim graze travel move sail run overlook surround fill
    watch talk work sleep stare gather line"""
)
ADVERBS = word_set(
    """not very quite rather really just only even still already almost nearly always
    never often sometimes usually together away again else however instead perhaps
    possibly probably likely maybe apparently clearly slightly partially partly mostly
    mainly especially overall well now currently there here thus therefore yes
    approximately roughly somewhat seemingly"""
)
#: Generic words of image descriptions ("The image shows ... In the background ...").
CAPTION_FILLER = word_set(
    """image images picture pictures photo photos photograph photographs pic pics
    snapshot shot frame view views scene scenes scenery setting settings background
    backgrounds foreground side sides area areas part parts portion section middle center
    centre left right top bottom front back rear edge distance surroundings
    surrounding environment atmosphere ambiance ambience vibe mood feel sense appearance
    composition depiction element elements detail details moment focus angle perspective
    close-up closeup thing things object objects item items stuff kind kinds type types
    sort way plenty presence overview arrangement example instance style time day"""
)
#: Collective/quantity nouns dropped only right before "of" ("a pair of shoes" -> shoe,
#: but "a parking lot" keeps "lot" and "a couple" as a subject stays).
QUANTITY_BEFORE_OF = word_set(
    """lot lots number variety group groups amount pair couple bunch set series collection assortment array range selection piece
    pieces handful row rows line lines stack stacks pile piles cluster bundle dozen
    dozens hundreds thousands millions crowd"""
)
NUMBER_WORDS = word_set(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty
    seventy eighty ninety hundred hundreds thousand thousands million millions billion
    dozen dozens first second third fourth fifth sixth seventh eighth ninth tenth once
    twice half multiple"""
)
COLOURS = word_set(
    """red orange yellow green blue purple violet pink brown black white gray grey beige
    tan maroon navy teal turquoise cyan magenta crimson scarlet khaki dark pale bright
    vivid pastel reddish bluish greenish yellowish brownish grayish greyish pinkish
    colorful colourful multicolored multicoloured multi-colored multi-coloured colored
    coloured blond blonde black-and-white monochrome silver gold golden bronze metallic"""
)
#: Colour words that are also things; kept when they head a noun phrase ("an orange").
COLOUR_ALSO_NOUN = word_set("orange")
SIZES = word_set(
    """big small large little tiny huge giant tall short long wide narrow thin thick
    massive enormous miniature medium high low deep shallow vast compact oversized slim
    skinny fat heavy"""
)
#: Descriptive adjectives that the lexicon also lists as nouns; not keywords on their
#: own and not kept as compound modifiers.
GENERIC_ADJECTIVES = word_set(
    """old young new modern beautiful pretty nice lovely good great fine cute adorable
    happy sad busy quiet calm empty full open closed clean dirty wet dry hot cold warm
    cool sunny cloudy clear shiny different similar main single double whole entire
    additional possible close far upper lower central outdoor outdoors indoor indoors
    natural typical traditional casual formal simple various other extra real fresh
    average common rare usual unusual interesting vibrant lush serene peaceful"""
)
#: -ing words whose noun reading dominates even right after another noun.
NOUN_ING = word_set(
    """building buildings painting paintings ceiling clothing railing railings awning
    wedding evening morning bedding sibling pudding icing frosting topping toppings
    dumpling stuffing lighting drawing drawings carving earring earrings housing living"""
)
#: Gerunds that make compounds ("dining table", "parking lot"). Other verb-only -ing
#: words after a determiner are read as participle adjectives ("a bustling street").
GERUND_MODIFIERS = word_set(
    """dining parking swimming fishing sailing cutting washing walking running sleeping
    shopping baking frying changing ironing skating diving boxing riding climbing
    bowling landing waiting dressing drinking hiking camping skiing surfing racing
    training reading writing cooking mixing serving sewing vending rocking folding
    measuring chopping boarding snowboarding skateboarding cycling jogging sporting
    rolling"""
)
#: Plural-only nouns and plurals whose singular means something else.
PLURAL_KEEP = word_set(
    """glasses sunglasses eyeglasses jeans pants trousers shorts scissors clothes goggles
    binoculars pliers tongs overalls pajamas pyjamas tights leggings news species series
    physics mathematics electronics athletics gymnastics headquarters stairs arms sports
    data people police cattle"""
)
#: Singular determiners: a noun phrase they open has a singular head, so an -s word
#: after its noun is a verb ("a woman points", "a dog sniffs"), not a plural head.
SINGULAR_OPENERS = word_set("a an one each every another this that")
#: A closed-form compound at least this frequent in general English (wordfreq's Zipf
#: scale: 1 is once per 10^8 words) names one thing: "hot dog" (hotdog), "teddy bear",
#: "hair dryer", "bus stop". Other noun-noun compounds are read as their head noun.
CLOSED_COMPOUND_ZIPF = 1.0
#: A closed form this common is the usual spelling, so the pair is written closed:
#: "air plane" -> airplane, "cell phone" -> cellphone (one keyword for both spellings).
CLOSED_SPELLING_ZIPF = 3.0
#: Below this (once per 10^8 words) a word no lexicon lists is a non-word.
NON_WORD_ZIPF = 1.0
#: Spelling correction: words rarer than TYPO_MAX_ZIPF, replaced by a neighbour at least
#: TYPO_ZIPF_GAP commoner (2 = a hundred times).
TYPO_MAX_ZIPF = 2.5
TYPO_ZIPF_GAP = 2.0
#: An adjective's closed form must be commoner ("hotdog" 2.8), its adjective no age word.
CLOSED_DESCRIPTIVE_ZIPF = 2.5
AGE_WORDS = word_set("old young new elderly aged")
LEMMA_OVERRIDES = {"leaves": "leaf"}
#: Informal spellings of function words that captions use ("flying thru the air"): read as
#: the word they stand for, which is then a stop word like it.
INFORMAL_SPELLINGS = {"thru": "through", "tho": "though", "altho": "although", "w": "with", "n": "and"}
#: Real words that captions write for a commoner word one letter away, recognisable by the
#: preposition before them: things stand "on a shelf"; "on a shell" is nearly always that
#: typo (a shell one stands on is rare in photos). word -> (prepositions, the word meant).
CONTEXT_TYPOS = {"shell": (frozenset({"on", "of"}), "shelf"), "shells": (frozenset({"on"}), "shelves")}
#: A closed compound written open ("lap top", "pick up truck", "side walk") is read closed
#: when the closed form is a noun this common in general English and the pair follows a
#: determiner, an adjective or a preposition other than "to" (a noun's place; "to pick up"
#: stays a verb and its particle).
SPLIT_COMPOUND_ZIPF = 3.0
#: Particles after a verb ("blow out", "pick up"): a word between "to" and one of them is a verb.
PARTICLES = word_set("up out off down away back")

#: Everything that ends a noun phrase and is never a keyword.
STOPWORDS = (
    DETERMINERS
    | PRONOUNS
    | PREPOSITIONS
    | CONJUNCTIONS
    | AUXILIARIES
    | CAPTION_VERBS
    | ADVERBS
    | CAPTION_FILLER
    | NUMBER_WORDS
)
DESCRIPTIVE = COLOURS | SIZES | GENERIC_ADJECTIVES
#: Words a split compound never starts or ends with ("a head", "in side", "some one").
FUNCTION_WORDS = DETERMINERS | PRONOUNS | CONJUNCTIONS | AUXILIARIES | ADVERBS | NUMBER_WORDS
