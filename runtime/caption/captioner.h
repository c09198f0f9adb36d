/* captioner.h — Open-VCLIP++'s pseudo-captions through model servers that
 * speak the OpenAI chat-completions protocol (llama.cpp's server, vLLM,
 * Ollama, hosted endpoints): each sampled frame goes to an image captioner
 * as a JPEG data URL with a captioning prompt, and the frame captions, in
 * order, to an LLM with the paper's system and user prompts (DESIGN.md §2).
 * We drive the servers; we do not reimplement the models. */
#ifndef VCLIP_CAPTIONER_H
#define VCLIP_CAPTIONER_H

#include <stddef.h>
#include "http.h"

#define CAPTION_FRAME_PROMPT "Write a short caption for this image."
#define CAPTION_SYSTEM_PROMPT "Always answer in one sentence."
/* {} stands for the frame captions */
#define CAPTION_SUMMARY_PROMPT                                                                                      \
    "Input: These are captions of the frames in a sequential order within the same video: {}. Please summarize " \
    "the whole video according to the frame captions in short. Output: The video shows"

typedef struct {
    const char *frame_url, *frame_model;  /* a base URL (".../v1") or the full ".../chat/completions" */
    const char *llm_url, *llm_model;
    const char *frame_prompt, *system_prompt, *summary_prompt; /* NULL: the defaults above */
    int max_tokens;                       /* per answer (0: 64) */
    HttpOptions http;
} CaptionConfig;

/* The summary prompt's {} is where the captions go: 0, or -1 with why. */
int caption_check_prompt(const char *summary_prompt, char *err, size_t cap);

/* The caption of one frame (JPEG bytes), malloc'd.  0, or -1 with why. */
int caption_frame(const CaptionConfig *c, const unsigned char *jpeg, size_t len, char **caption, char *err, size_t cap);
/* The video's caption from its frame captions, in order, malloc'd. */
int caption_summary(const CaptionConfig *c, char *const *frames, int n, char **caption, char *err, size_t cap);

#endif
