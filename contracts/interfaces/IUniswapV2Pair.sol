// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The parts of a Uniswap V2 pair (v2-core 1.0.1) the vault reads for its TWAP.
interface IUniswapV2Pair {
    function token0() external view returns (address);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    /// @notice Sum over time of (reserve1 / reserve0) as UQ112x112, up to blockTimestampLast (wraps).
    function price0CumulativeLast() external view returns (uint256);
    /// @notice Sum over time of (reserve0 / reserve1) as UQ112x112, up to blockTimestampLast (wraps).
    function price1CumulativeLast() external view returns (uint256);
}

/// @notice Uniswap V2 factory: the pair of two tokens (address(0) if none).
interface IUniswapV2Factory {
    function getPair(address tokenA, address tokenB) external view returns (address);
}
