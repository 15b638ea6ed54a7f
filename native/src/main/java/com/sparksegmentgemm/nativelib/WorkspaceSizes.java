package com.sparksegmentgemm.nativelib;

/**
 * Workspace bytes for one call ({@code sgemm_workspace_sizes} in segment_gemm.h).
 *
 * @param floatBytes float workspace the tensor-core backends need (the portable one needs none)
 * @param floatBytesCoalesced float workspace that also lets segments sharing a weight be
 *     coalesced into one tall problem per weight, when that pays ({@code >= floatBytes})
 * @param intBytes int workspace every backend needs
 */
public record WorkspaceSizes(long floatBytes, long floatBytesCoalesced, long intBytes) {}
