"""A tiny random LLaVA, built fully offline, that loads through the same
``from_pretrained`` calls as ``llava-hf/llava-1.5-7b-hf``.

Why it looks like this:

* The vision tower is a CLIP with a CLS token, so the processor must be told
  ``num_additional_image_tokens=1`` and ``vision_feature_select_strategy=
  "default"`` (which drops the CLS again): (32/8)**2 = 16 image tokens, and
  ``image_seq_length`` must say 16 too, or ``generate`` fails with "Image
  features and image tokens do not match".
* A byte-level BPE with random weights decodes to garbage bytes. A word-level
  vocabulary of real English words makes the random model emit words, so the
  keyword code downstream has something to chew on. The structural tokens
  (specials and the chat roles) are suppressed in the saved generation config,
  so every generated token is a word and the output never ends early, and no
  word repeats (``no_repeat_ngram_size=1``, which also bars the prompt's words).
* Left padding, so batched output equals one-image-at-a-time output.
"""

from __future__ import annotations

import os
from pathlib import Path

# Real words: what a description of a photo might contain.
WORDS = """
a an the of in on with and near under over behind next to at by from is are
cat dog horse cow sheep goat pig chicken duck goose bird eagle owl parrot
pigeon crow swan penguin flamingo ostrich fish shark whale dolphin seal otter
bear wolf fox deer moose elk rabbit squirrel mouse rat hamster beaver raccoon
lion tiger leopard cheetah jaguar elephant giraffe zebra rhino hippo camel
llama kangaroo koala panda monkey gorilla chimpanzee snake lizard turtle frog
crocodile alligator spider bee butterfly ant beetle snail crab lobster octopus
jellyfish starfish
car truck bus van taxi ambulance motorcycle bicycle scooter tractor train
tram subway airplane helicopter drone boat ship yacht canoe kayak submarine
rocket skateboard wheelchair stroller trailer forklift excavator bulldozer
crane sled
table chair sofa bed lamp desk shelf cabinet door window mirror clock vase
plate bowl cup mug glass bottle fork knife spoon pan pot kettle oven fridge
microwave toaster sink bathtub toilet towel pillow blanket carpet curtain
computer laptop keyboard monitor phone camera television radio guitar piano
violin drum book newspaper pen pencil paper bag backpack suitcase umbrella
hat cap helmet shirt jacket coat dress skirt trousers jeans shoe boot sock
glove scarf tie watch ring necklace glasses ball kite balloon toy doll
teddy frisbee racket bat surfboard ski snowboard tent ladder hammer saw
shovel rope box basket bucket barrel fence gate bench sign pole hydrant
mailbox statue fountain flag banner poster
apple banana orange lemon grape strawberry cherry pear peach mango pineapple
watermelon tomato potato carrot onion pepper broccoli lettuce corn mushroom
bread cake pizza sandwich burger cookie donut cheese egg milk coffee tea
red orange yellow green blue purple pink brown black white gray grey silver
gold beige striped spotted dotted plaid wooden metal plastic glass stone
leather furry shiny rusty broken wet dry dirty clean old new small large
tiny huge tall short long round square bright dark blurry
street road highway bridge tunnel sidewalk crosswalk parking lot building
house apartment skyscraper tower church temple castle barn garage shop store
market restaurant cafe kitchen bedroom bathroom office classroom library
hospital airport station harbor beach ocean sea lake river waterfall pond
island mountain hill valley forest jungle desert field meadow farm garden
park playground stadium zoo cave cliff volcano glacier snow ice rain fog
cloud sky sun moon star night sunset sunrise grass tree flower bush leaf
rock sand mud water fire smoke light shadow
man woman boy girl child baby person people crowd player worker police
doctor chef farmer soldier rider driver tourist
standing sitting running walking jumping flying swimming sleeping eating
holding carrying riding parked crashed flooded burning overturned
unusual strange rare graffiti reflection person-shaped double-decker
"""

SPECIALS = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>", "image": "<image>"}
ROLE_TOKENS = ["USER:", "ASSISTANT:", "SYSTEM:"]

# The chat template of llava-hf/llava-1.5-7b-hf, in spirit: "USER: <image>\n<prompt> ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_SEQ_LENGTH = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLS added by CLIP, dropped by "default"


def _vocabulary() -> list[str]:
    seen: dict[str, None] = {}
    for word in WORDS.split():
        seen.setdefault(word, None)
    return list(seen)


def build_tokenizer():
    """A word-level fast tokenizer over ``WORDS`` with LLaVA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIALS["pad"], SPECIALS["unk"], SPECIALS["bos"], SPECIALS["eos"]]
    vocab_list = specials + ROLE_TOKENS + _vocabulary() + [SPECIALS["image"]]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIALS["unk"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    bos_id = vocab[SPECIALS["bos"]]
    core.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS['bos']} $A",
        pair=f"{SPECIALS['bos']} $A $B",
        special_tokens=[(SPECIALS["bos"], bos_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=SPECIALS["bos"],
        eos_token=SPECIALS["eos"],
        unk_token=SPECIALS["unk"],
        pad_token=SPECIALS["pad"],
        extra_special_tokens={"image_token": SPECIALS["image"]},
        padding_side="left",
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llava(path: str | os.PathLike, seed: int = 0) -> str:
    """Build and save a tiny random LLaVA (model + processor) to ``path``; return it as str.

    Deterministic for a given ``seed``. Takes well under a second; the directory is
    under 1 MB.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    try:  # transformers 5 without torchvision: the Pillow backend, imported directly to skip a warning
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older/newer transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer()
    image_id = tokenizer.convert_tokens_to_ids(SPECIALS["image"])

    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        image_seq_length=IMAGE_SEQ_LENGTH,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    config.pad_token_id = tokenizer.pad_token_id  # top level too: generate() looks here

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    # Random init gives near-uniform logits; widen them so greedy choices are far apart
    # and batched vs single-image runs cannot flip an argmax on float noise.
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head.mul_(8.0)

    structural = [SPECIALS[k] for k in ("pad", "unk", "bos", "eos", "image")] + ROLE_TOKENS
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=tokenizer.convert_tokens_to_ids(structural),
        no_repeat_ngram_size=1,  # each word at most once: "garden garden garden" makes poor keywords
    )
    model.save_pretrained(out)

    image_processor = ImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
        do_resize=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return str(out)


def tiny_llava_dir(tmp_path_factory) -> str:
    """Body of a session-scoped pytest fixture: one tiny LLaVA per test session.

    The conftest can expose it as::

        @pytest.fixture(scope="session")
        def tiny_llava_dir(tmp_path_factory):
            return support.tiny_llava.tiny_llava_dir(tmp_path_factory)
    """
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


if __name__ == "__main__":  # python tests/support/tiny_llava.py OUT_DIR
    import sys

    print(build_tiny_llava(sys.argv[1] if len(sys.argv) > 1 else "tiny-llava"))
