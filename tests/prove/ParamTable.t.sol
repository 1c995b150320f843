// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ParamTable} from "../../contracts/libraries/ParamTable.sol";
import {IDealVaultTypes} from "../../contracts/interfaces/IDealVault.sol";
import {ProveBase} from "./ProveBase.sol";
import {ParamVault} from "./ParamVault.sol";

interface IProveWarp {
    function warp(uint256 timestamp) external;
}

/// @title ParamTableProofs
/// @notice halmos proofs (`make prove`) that the owner's parameters never leave [floor, limit]:
///         ParamTable's packed descriptors are the documented table, the fields of one slot never
///         overlap, and the real DealVaultExtension.setParam / acceptParam (the code the vault runs
///         by DELEGATECALL), started from ANY storage state whose parameter is within its limits,
///         end with it still within them, the queued value within them and not looser than the
///         deal's initial value, and every other parameter and role bit of the four words untouched.
contract ParamTableProofs is ProveBase {
    uint256 private constant COUNT = 11;
    /// @dev The owner's address is the low 20 bytes of slot 3 (DealVaultStorage).
    uint256 private constant ADDRESS_MASK = (1 << 160) - 1;

    ParamVault private vault;

    function setUp() public {
        vault = new ParamVault();
    }

    /// @dev The table of ParamTable's NatSpec, column by column (slot, byte offset, bytes, higher is
    ///      tighter, floor, limit), written out independently of the packed TABLE constant.
    function _row(uint256 p)
        private
        pure
        returns (uint256 slot, uint256 offset, uint256 size, bool higher, uint256 lo, uint256 hi)
    {
        if (p == 0) return (1, 20, 2, false, 0, 3000);
        if (p == 1) return (1, 22, 2, false, 0, 2500);
        if (p == 2) return (1, 24, 2, false, 0, 1000);
        if (p == 3) return (1, 28, 4, false, 1, 2 ** 32 - 1);
        if (p == 4) return (0, 27, 2, true, 0, 9999);
        if (p == 5) return (1, 26, 2, false, 0, 1000);
        if (p == 6) return (3, 20, 4, true, 1, 1e6);
        if (p == 7) return (3, 24, 8, true, 1, 1e16);
        if (p == 8) return (2, 20, 2, false, 0, 1000);
        if (p == 9) return (0, 29, 2, true, 1, 65_535);
        return (2, 22, 4, true, 1 hours, 30 days);
    }

    /// @notice Every descriptor is its documented row, floor <= limit, and the limit fits the field.
    function check_table_isTheDocumentedTable(uint8 p) external pure {
        _assume(p < COUNT);
        (uint256 slot, uint256 offset, uint256 size, bool higher, uint256 lo, uint256 hi) = _row(p);
        (uint256 s, uint256 shift, uint256 mask) = ParamTable.locate(p);
        assert(s == slot && ParamTable.slotOf(p) == slot);
        assert(shift == offset * 8);
        assert(mask == (1 << (size * 8)) - 1);
        assert(ParamTable.higherIsTighter(p) == higher);
        assert(ParamTable.floor(p) == lo && ParamTable.limit(p) == hi);
        assert(lo <= hi && hi <= mask);
        // the field lies above the 20-byte address of slots 1-3 and inside the word
        assert(offset + size <= 32 && (slot == 0 || offset >= 20));
        // the hard ceilings are the library's named constants
        if (p == 0) assert(hi == ParamTable.MAX_LTV_BPS);
        if (p == 1) assert(hi == ParamTable.MAX_EXPOSURE_BPS);
        if (p == 7) assert(hi == ParamTable.MAX_PRICE);
    }

    /// @notice Two parameters of one slot never share a bit.
    function check_table_fieldsDisjoint(uint8 p, uint8 q) external pure {
        (p, q) = (_pin(p), _pin(q));
        _assume(p != q);
        (uint256 sp, uint256 shp, uint256 mp) = ParamTable.locate(p);
        (uint256 sq, uint256 shq, uint256 mq) = ParamTable.locate(q);
        assert(sp != sq || (mp << shp) & (mq << shq) == 0);
    }

    /// @dev One parameter's place and limits, in memory (the proofs have many locals).
    struct Field {
        uint256 slot;
        uint256 shift;
        uint256 mask;
        uint256 lo;
        uint256 hi;
        bool higher;
    }

    function _field(uint256 p) private pure returns (Field memory f) {
        (f.slot, f.shift, f.mask) = ParamTable.locate(p);
        (f.lo, f.hi, f.higher) = (ParamTable.floor(p), ParamTable.limit(p), ParamTable.higherIsTighter(p));
    }

    /// @notice setParam, from any state whose parameter, initial value and queued value are within
    ///         [floor, limit]: on success the parameter is still within them (and equals either the
    ///         old value or the new one, the new one only if not looser), a queued loosening is within
    ///         them and not past the initial value, and nothing else of the four words moved.
    function check_setParam_staysWithinLimits(
        uint8 p,
        uint256 value,
        uint256[4] memory words,
        uint256[4] memory init,
        uint256 q
    ) external {
        p = _pin(p);
        Field memory f = _field(p);
        words[3] = (words[3] & ~ADDRESS_MASK) | uint160(address(this)); // this test is the owner
        uint256 current = (words[f.slot] >> f.shift) & f.mask;
        uint256 initial = (init[f.slot] >> f.shift) & f.mask;
        _assume(f.lo <= current && current <= f.hi && f.lo <= initial && initial <= f.hi);
        _assumeQueue(q, f);
        Field memory d = _field(10); // LoosenDelay, within its own limits like every parameter
        uint256 delay = (words[d.slot] >> d.shift) & d.mask;
        _assume(d.lo <= delay && delay <= d.hi);
        for (uint256 s; s < 4; ++s) {
            vault.pokeWord(s, words[s]);
            vault.pokeInitial(s, init[s]);
        }
        vault.pokeQueued(p, q);

        (bool ok,) = address(vault).call(abi.encodeCall(vault.setParam, (IDealVaultTypes.Param(p), value)));
        _assume(ok);

        uint256 after_ = (vault.word(f.slot) >> f.shift) & f.mask;
        assert(f.lo <= after_ && after_ <= f.hi);
        bool tighter = f.higher ? value >= current : value <= current;
        assert(after_ == (tighter ? value : current));
        uint256 nq = vault.queuedOf(p);
        if (tighter) {
            assert(nq == 0);
        } else {
            assert(nq >> 64 == value && f.lo <= value && value <= f.hi);
            assert(f.higher ? value >= initial : value <= initial);
            assert(uint64(nq) == block.timestamp + delay); // validAt: now + loosenDelay (>= 1 hour)
        }
        _assertOthersUntouched(words, f);
    }

    /// @notice acceptParam, from any state whose queue for the parameter is within [floor, limit]:
    ///         on success the parameter is the queued value (so within them), the queue is empty and
    ///         nothing else moved.
    function check_acceptParam_staysWithinLimits(uint8 p, uint256[4] memory words, uint256 q, uint256 when)
        external
    {
        p = _pin(p);
        Field memory f = _field(p);
        _assumeQueue(q, f);
        for (uint256 s; s < 4; ++s) {
            vault.pokeWord(s, words[s]);
        }
        vault.pokeQueued(p, q);
        IProveWarp(address(CHEATS)).warp(when);

        (bool ok,) = address(vault).call(abi.encodeCall(vault.acceptParam, (IDealVaultTypes.Param(p))));
        _assume(ok);

        uint256 after_ = (vault.word(f.slot) >> f.shift) & f.mask;
        assert(after_ == q >> 64 && f.lo <= after_ && after_ <= f.hi);
        assert(uint64(q) <= when && vault.queuedOf(p) == 0);
        _assertOthersUntouched(words, f);
    }

    /// @dev What setParam writes in the queue: 0, or value << 64 | validAt, value within the limits.
    /// @dev `p` (< COUNT) as a constant on each path: one path per parameter, so that the storage
    ///      slot the vault writes is concrete (halmos needs concrete storage slots).
    function _pin(uint8 p) private pure returns (uint8) {
        _assume(p < COUNT);
        if (p == 0) return 0;
        if (p == 1) return 1;
        if (p == 2) return 2;
        if (p == 3) return 3;
        if (p == 4) return 4;
        if (p == 5) return 5;
        if (p == 6) return 6;
        if (p == 7) return 7;
        if (p == 8) return 8;
        if (p == 9) return 9;
        return 10;
    }

    function _assumeQueue(uint256 q, Field memory f) private pure {
        _assume(q == 0 || (q >> 64 >= f.lo && q >> 64 <= f.hi && uint64(q) != 0));
    }

    function _assertOthersUntouched(uint256[4] memory words, Field memory f) private view {
        for (uint256 s; s < 4; ++s) {
            uint256 keepMask = s == f.slot ? ~(f.mask << f.shift) : type(uint256).max;
            assert(vault.word(s) & keepMask == words[s] & keepMask);
        }
    }
}
