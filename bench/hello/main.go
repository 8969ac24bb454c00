// Command hello is the smallest useful Go program: the benchmark's measure of what a launcher adds
// to a program that does almost nothing itself.
package main

import "fmt"

func main() {
	fmt.Println("hello, world")
}
