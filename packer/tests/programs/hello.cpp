// A small C++ program for the packer's tests: reports the x86-64 level it was compiled for
// (from the compiler's own feature macros) and its arguments, through libstdc++.
#include <iostream>
#include <string>
#include <vector>

static std::string level() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__)
    return "v4";
#elif defined(__AVX2__) && defined(__BMI2__) && defined(__FMA__)
    return "v3";
#elif defined(__SSE4_2__) && defined(__POPCNT__)
    return "v2";
#else
    return "v1";
#endif
}

int main(int argc, char **argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::cout << "lang=c++\nlevel=" << level() << "\nargs=";
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::cout << (i ? " " : "") << args[i];
    }
    std::cout << std::endl;
    return args.empty() ? 0 : static_cast<int>(args.size());
}
