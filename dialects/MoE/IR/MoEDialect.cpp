//===- MoEDialect.cpp - The moe dialect and its attributes ----------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Support/RoPE.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEDialect.cpp.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"

void MoEDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
}

FailureOr<llvm::APFloat> mlir::moe::detail::parseF64Param(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return llvm::APFloat(value);
}

FailureOr<bool> mlir::moe::detail::parseBoolParam(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

static ::moe::RopeParams
makeRopeParams(const llvm::APFloat &theta, RopeScaling scaling,
               const llvm::APFloat &factor, int64_t originalMaxPosition,
               const llvm::APFloat &betaFast, const llvm::APFloat &betaSlow,
               const llvm::APFloat &mscale, const llvm::APFloat &mscaleAllDim,
               const llvm::APFloat &attentionFactor, bool truncate,
               const llvm::APFloat &lowFreqFactor,
               const llvm::APFloat &highFreqFactor) {
  ::moe::RopeParams params;
  params.theta = theta.convertToDouble();
  params.kind = static_cast<::moe::RopeScalingKind>(scaling);
  params.factor = factor.convertToDouble();
  params.originalMaxPosition = originalMaxPosition;
  params.betaFast = betaFast.convertToDouble();
  params.betaSlow = betaSlow.convertToDouble();
  params.mscale = mscale.convertToDouble();
  params.mscaleAllDim = mscaleAllDim.convertToDouble();
  params.attentionFactor = attentionFactor.convertToDouble();
  params.truncate = truncate;
  params.lowFreqFactor = lowFreqFactor.convertToDouble();
  params.highFreqFactor = highFreqFactor.convertToDouble();
  return params;
}

::moe::RopeParams RopeAttr::getParams() const {
  return makeRopeParams(getTheta(), getScaling(), getFactor(),
                        getOriginalMaxPosition(), getBetaFast(), getBetaSlow(),
                        getMscale(), getMscaleAllDim(), getAttentionFactor(),
                        getTruncate(), getLowFreqFactor(),
                        getHighFreqFactor());
}

LogicalResult
RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                 llvm::APFloat theta, RopeScaling scaling,
                 llvm::APFloat factor, int64_t originalMaxPosition,
                 llvm::APFloat betaFast, llvm::APFloat betaSlow,
                 llvm::APFloat mscale, llvm::APFloat mscaleAllDim,
                 llvm::APFloat attentionFactor, bool truncate,
                 llvm::APFloat lowFreqFactor, llvm::APFloat highFreqFactor) {
  std::string problem = ::moe::validateRopeParams(
      makeRopeParams(theta, scaling, factor, originalMaxPosition, betaFast,
                     betaSlow, mscale, mscaleAllDim, attentionFactor,
                     truncate, lowFreqFactor, highFreqFactor));
  if (!problem.empty())
    return emitError() << "#moe.rope: " << problem;
  return success();
}

static_assert(static_cast<int>(RopeScaling::Default) ==
                      static_cast<int>(::moe::RopeScalingKind::Default) &&
                  static_cast<int>(RopeScaling::Linear) ==
                      static_cast<int>(::moe::RopeScalingKind::Linear) &&
                  static_cast<int>(RopeScaling::Yarn) ==
                      static_cast<int>(::moe::RopeScalingKind::Yarn) &&
                  static_cast<int>(RopeScaling::Llama3) ==
                      static_cast<int>(::moe::RopeScalingKind::Llama3),
              "RopeScaling and moe::RopeScalingKind must stay in step");
