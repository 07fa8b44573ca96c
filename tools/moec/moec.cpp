//===- moec.cpp - The MoE compiler driver ---------------------------------===//

#include "moe/Compiler/Driver.h"

int main(int argc, char **argv) { return mlir::moe::moecMain(argc, argv); }
