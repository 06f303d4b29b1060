/* The word types of the DSP kernels' staging, on every target (the staging's sizes and the
 * kernels' signatures use them in portable builds too). */
#ifndef TT_DSP_WORDS_H
#define TT_DSP_WORDS_H

#include <stdint.h>

/* 32-bit words of staged data: read and written as words and halfwords of the same array. */
typedef uint32_t tt_dsp_word __attribute__((may_alias));
/* Two of them, for LDRD and STRD (tt_dsp_common.h). */
typedef uint64_t tt_dsp_dword __attribute__((may_alias));

#endif /* TT_DSP_WORDS_H */
