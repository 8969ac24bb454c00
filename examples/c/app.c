/* A program built once per x86-64 level by the Makefile or CMakeLists.txt beside it: it says
 * which build runs, from the instruction sets the compiler was allowed to use. */
#include <stdio.h>

int main(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    const char *level = "v4";
#elif defined(__AVX2__) && defined(__BMI2__) && defined(__FMA__)
    const char *level = "v3";
#elif defined(__SSE4_2__) && defined(__POPCNT__)
    const char *level = "v2";
#else
    const char *level = "v1";
#endif
    printf("hello from the x86-64 %s build\n", level);
    return 0;
}
