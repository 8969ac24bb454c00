module mgobench/hello

go 1.19
