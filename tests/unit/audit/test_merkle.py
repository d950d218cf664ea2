"""The ledger's Merkle tree against reference vectors of an RFC 6962 implementation.

The leaves, node hashes, roots and proofs below are the test data of
transparency-dev/merkle (Apache-2.0): ``testonly/constants.go``
(``LeafInputs``, ``NodeHashes``, ``RootHashes``) and
``proof/verify_test.go`` (``inclusionProofs``, ``consistencyProofs``).
They are data computed by that implementation, not by ours.
"""

from __future__ import annotations

import pytest

from services.audit import merkle

LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
NODES = [
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf number counted from 1, tree size, path)
INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (1, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def tree(size: int = 8) -> merkle.MemoryTree:
    return merkle.MemoryTree(bytes.fromhex(leaf) for leaf in LEAVES[:size])


def hexes(hashes):
    return [value.hex() for value in hashes]


def test_leaf_and_node_hashes_equal_the_reference():
    built = tree()
    assert [hexes(level) for level in built.levels] == NODES


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_of_every_size_equal_the_reference(size):
    built = tree(size)
    assert merkle.root_hash(built.node, size).hex() == ROOTS[size]
    assert built.frontier.root().hex() == ROOTS[size]


@pytest.mark.parametrize("leaf, size, path", INCLUSION)
def test_inclusion_proofs_equal_the_reference_and_verify(leaf, size, path):
    built = tree()
    assert hexes(merkle.inclusion_path(built.node, leaf - 1, size)) == path
    root = bytes.fromhex(ROOTS[size])
    proof = [bytes.fromhex(value) for value in path]
    leaf_hash = built.node(0, leaf - 1)
    assert merkle.verify_inclusion(leaf_hash, leaf - 1, size, proof, root)
    assert not merkle.verify_inclusion(leaf_hash, leaf, size, proof, root) or size == 1
    assert not merkle.verify_inclusion(leaf_hash, leaf - 1, size * 2, proof, root)
    assert not merkle.verify_inclusion(b"wrong leaf", leaf - 1, size, proof, root)
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        assert not merkle.verify_inclusion(leaf_hash, leaf - 1, size, flipped, root)
    assert not merkle.verify_inclusion(leaf_hash, leaf - 1, size, [*proof, root], root)


@pytest.mark.parametrize("old, new, path", CONSISTENCY)
def test_consistency_proofs_equal_the_reference_and_verify(old, new, path):
    built = tree()
    assert hexes(merkle.consistency_path(built.node, old, new)) == path
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    proof = [bytes.fromhex(value) for value in path]
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)
    if proof:
        assert not merkle.verify_consistency(old, new, new_root, old_root, proof)
        assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(old - 1 or 2, new, old_root, new_root, proof)
        for position in range(len(proof)):
            flipped = list(proof)
            flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
            assert not merkle.verify_consistency(old, new, old_root, new_root, flipped)


def test_every_proof_of_a_larger_tree_verifies_against_its_own_root():
    built = merkle.MemoryTree(str(number).encode() for number in range(37))
    for size in range(1, 38):
        root = merkle.root_hash(built.node, size)
        for index in range(size):
            path = merkle.inclusion_path(built.node, index, size)
            assert merkle.verify_inclusion(built.node(0, index), index, size, path, root)
        for old in range(1, size + 1):
            proof = merkle.consistency_path(built.node, old, size)
            assert merkle.verify_consistency(old, size, merkle.root_hash(built.node, old), root, proof)


def test_a_proof_reads_only_logarithmically_many_nodes():
    wanted = merkle.nodes_needed(lambda node: merkle.inclusion_path(node, 123_456, 1_000_000))
    assert len(wanted) <= 2 * 20
    head = merkle.nodes_needed(lambda node: merkle.root_hash(node, 1_000_000))
    assert head == set(merkle.Frontier.shape(1_000_000))
