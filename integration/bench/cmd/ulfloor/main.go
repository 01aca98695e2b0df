// Command ulfloor does nothing. It is the floor the benchmark holds
// underlay-hook against: what starting any static Go binary costs here.
package main

func main() {}
