from setuptools import setup

packages = ['tensorlite', 'tensorlite.autograd', 'tensorlite.functional', 'tensorlite.kernels',
            'tensorlite.kernels.cpu', 'tensorlite.kernels.cuda', 'tensorlite.nn', 'tensorlite.data',
            'tensorlite.optim', 'tensorlite.train', 'tensorlite.models', 'tensorlite.commands']

# GPU checks that need no GPU, in the test extra so CI runs them: real CuPy's API
# against the simulated one (cupy-cuda12x imports without a device: a 137 MB wheel, 0.2 s import)
gpu_check = ['cupy-cuda12x']
# ... and every CUDA kernel compiled by NVIDIA's compilers (tensorlite gpu-report): libNVVM and
# ptxas of one CUDA release, which agree (12.9's NVVM emits PTX 8.8, which its ptxas reads)
gpu_check += ['nvidia-cuda-nvcc-cu12==12.9.86']

setup(
    name='tensorlite',
    version='0.1.0',
    description='A small autograd engine on NumPy/CuPy with hand-written Numba kernels, '
                'for studying and training video-understanding models',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=packages,
    # models/ stays at the top level (the architectures are users of the engine, not part of it)
    package_dir={'tensorlite.models': 'models'},
    install_requires=['numpy>=1.24', 'numba>=0.59', 'imageio>=2.31', 'imageio-ffmpeg>=0.4.9', 'pillow>=9',
                      'tqdm>=4.60'],
    entry_points={'console_scripts': ['tensorlite = tensorlite.cli:main']},
    extras_require={
        # the distributed tests run in CI: mpi4py and an MPICH runtime (mpiexec) from wheels
        'test': ['pytest>=7', 'hypothesis>=6.80', 'matplotlib>=3.7', 'mpi4py>=4.0', 'mpich']
                + gpu_check,
        'dist': ['mpi4py>=4.0', 'mpich'],
        'gpu': ['cupy-cuda12x'],
        'gpu-check': gpu_check,
        'plot': ['matplotlib>=3.7'],
        # optional references: PyTorch, OpenCV's flow, and the video models of torchvision and
        # PyTorchVideo (tests/reference_models.py builds them beside the CPU torch build)
        'bench': ['torch==2.13.0', 'opencv-python-headless', 'torchvision==0.28.0',
                  'pytorchvideo==0.1.5'],
    },
)
