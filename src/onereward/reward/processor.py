"""The image-only Qwen2.5-VL processor: the one way this project builds and loads a reward model's processor.

transformers' `Qwen2_5_VLProcessor` cannot be constructed without torchvision (its video processor needs it, and
`video_processor=None` still fails the class check), and `AutoProcessor.from_pretrained` on a saved folder silently
returns only the tokenizer (NOTES.md section 3). We never feed video, so this subclass drops the video processor;
everything else (chat template, `__call__` on images, save/load) is the parent's.
"""

from __future__ import annotations

from transformers import ProcessorMixin, Qwen2_5_VLProcessor

IMAGE_TOKEN, VIDEO_TOKEN = "<|image_pad|>", "<|video_pad|>"


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # noqa: N801 (named after the class it stands in for)
    """`Qwen2_5_VLProcessor` without a video processor, so it works without torchvision."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = IMAGE_TOKEN, VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
